//===- ConsumerEpilogue.h - Element-wise consumers in a kernel --*- C++ -*-===//
//
// A kernel writes a buffer C (f32, rows x columns) and, most of the time,
// one element-wise op reads it right back: the bias of a linear layer, a
// residual add, the rounding of logits to bf16, the cast of a gradient or
// a normalized row to a matmul operand. Run in the kernel's epilogue, that
// op takes C's values from registers, and C is never written: one write
// and one read of C less (for GPT-2's logits, 1.6 GB each).
//
// Two producers: the warpgroup-MMA matmul, which moves down to the
// consumer's place (its operands are ready early), and the warp-per-row
// kernels, whose consumer moves up to them (their other outputs may be
// read before the consumer runs).
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_CONVERSION_CONSUMEREPILOGUE_H
#define TESSERA_CONVERSION_CONSUMEREPILOGUE_H

#include "mlir/Dialect/Linalg/IR/Linalg.h"

#include <optional>

namespace tessera {

/// The buffer a memref value is a view of (through subviews, reshapes,
/// casts), or the value itself.
mlir::Value rootBuffer(mlir::Value v);

/// Whether the ops strictly between `from` and `to` (same block) leave
/// alone what moving an op across them needs: they neither write nor free
/// `noWrite`, nor touch `noAccess` (root buffers). Allocations are
/// skipped; ops whose effects are unknown touch everything.
bool untouchedBetween(mlir::Operation *from, mlir::Operation *to,
                      llvm::ArrayRef<mlir::Value> noWrite,
                      llvm::ArrayRef<mlir::Value> noAccess);

/// The element-wise consumer of a 2-d buffer C that the kernel writing C
/// runs instead of storing C.
class ConsumerEpilogue {
public:
  /// Where the fused kernel runs.
  enum class Place {
    Consumer, ///< the producer moves down to the consumer
    Producer, ///< the consumer moves up to the producer
  };

  /// The consumer of `c`, written by `producer` (an op, or ops nested in
  /// it), if it can run in the producer's kernel at `place`: C is an
  /// allocation that only the producer, a zero fill before it,
  /// deallocations and one all-parallel linalg.generic read (directly or
  /// through one memref.expand_shape, with the identity map), later in
  /// the same block; and moving the producer (which reads `reads`) or the
  /// consumer changes no value read or written. At Place::Producer, C may
  /// have other readers too: the consumer is then the first reader that
  /// qualifies, and the producer still stores C (`storesC`).
  static std::optional<ConsumerEpilogue> find(mlir::Operation *producer,
                                              mlir::Value c,
                                              llvm::ArrayRef<mlir::Value> reads,
                                              Place place);

  /// Whether C has readers besides the consumer (Place::Producer only), so
  /// the producer still stores it.
  bool storesC() const { return keepsC; }

  /// `find`, after the consumer found has taken in an element-wise op that
  /// reads its output (`absorbReader`), so that both run in the producer's
  /// kernel; a consumer for which `keep` holds is left as it is.
  static std::optional<ConsumerEpilogue>
  findAbsorbing(mlir::Operation *producer, mlir::Value c,
                llvm::ArrayRef<mlir::Value> reads, Place place,
                llvm::function_ref<bool(mlir::Operation *)> keep = nullptr);

  /// Merges into `first` (an all-parallel linalg.generic on buffers) an
  /// all-parallel generic that reads one of first's outputs, a fresh
  /// allocation, with the identity map later in the block, as more
  /// results: one op then computes both, in first's place (the reader's
  /// output allocations move up). Checks that nothing in between changes
  /// what the reader reads or touches what it writes. Returns whether it
  /// merged (`first` is then the merged op).
  static bool absorbReader(mlir::linalg::GenericOp &first);

  /// Place::Consumer: the op before which the fused kernel goes.
  mlir::Operation *consumerOp() const { return consumer; }

  /// Place::Producer: moves the consumer's output allocations that sit
  /// between `producer` and the consumer to before `producer`.
  void hoistOutputs(mlir::Operation *producer);

  /// Runs the consumer's body for C[row, col + j], the producer's values
  /// `values[j]` (`col` a multiple of their number), storing what it
  /// yields. Operands that hold the values in consecutive elements are
  /// loaded and stored as vectors.
  void emit(mlir::OpBuilder &b, mlir::Location loc, mlir::Value row,
            mlir::Value col, llvm::ArrayRef<mlir::Value> values);

  /// Erases the consumer and the view of C it read.
  void eraseConsumer();

  /// Erases the allocation `c` and its deallocations if nothing else uses
  /// it.
  static void eraseIfUnused(mlir::Value c);

private:
  ConsumerEpilogue() = default;

  /// `find` for one reader of C (through `view`, C or its expand_shape).
  static std::optional<ConsumerEpilogue>
  find(mlir::Operation *producer, mlir::Value c,
       llvm::ArrayRef<mlir::Value> reads, Place place, mlir::Value view,
       mlir::Operation *reader, bool storesC);

  mlir::linalg::GenericOp consumer;
  /// The consumer's input that is C, or a view of it.
  mlir::Value view;
  /// For each of C's two dimensions, the sizes of the consumer dimensions
  /// it expands to.
  llvm::SmallVector<llvm::SmallVector<int64_t>, 2> groups;
  bool keepsC = false;
};

} // namespace tessera

#endif // TESSERA_CONVERSION_CONSUMEREPILOGUE_H
