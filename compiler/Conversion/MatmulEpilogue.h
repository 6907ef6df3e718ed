//===- MatmulEpilogue.h - Element-wise consumers in a matmul kernel -*- C++ -*-===//
//
// A tensor-core matmul writes C (f32) and, most of the time, one
// element-wise op reads it right back: the bias of a linear layer, a
// residual add, the rounding of logits to bf16, the cast of a gradient to
// a matmul operand. Run in the matmul kernel's epilogue, that op reads the
// accumulators from registers, and C is never written: one write and one
// read of M x N f32 less per matmul (for GPT-2's logits, 3.3 GB per step).
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_CONVERSION_MATMULEPILOGUE_H
#define TESSERA_CONVERSION_MATMULEPILOGUE_H

#include "mlir/Dialect/Linalg/IR/Linalg.h"

#include <optional>

namespace tessera {

/// The element-wise consumer of a (buffer) matmul's result C, M x N, that
/// the matmul's kernel runs instead of storing C.
class MatmulEpilogue {
public:
  /// The consumer of `matmul`'s output if it can run in the epilogue:
  /// C is an allocation that only the matmul, a zero fill before it,
  /// deallocations and one all-parallel linalg.generic read (directly or
  /// through one memref.expand_shape, with the identity map), later in the
  /// same block, with no write in between to the buffers the matmul reads.
  static std::optional<MatmulEpilogue> find(mlir::linalg::GenericOp matmul);

  /// Where the fused kernel goes: the consumer's place (its other operands
  /// are ready there, and the matmul's inputs are unchanged).
  mlir::Operation *insertionPoint() const { return consumer; }

  /// Runs the consumer's body for C[row, col] and C[row, col + 1] (`col`
  /// even), the matmul's results `pair`, storing what it yields. Operands
  /// that hold the pair in two consecutive elements are loaded and stored
  /// as 2-element vectors.
  void emitPair(mlir::OpBuilder &b, mlir::Location loc, mlir::Value row,
                mlir::Value col, mlir::Value pair0, mlir::Value pair1);

  /// Erases the consumer and the view of C it read; C's allocation goes
  /// once its last use (the zero fill) has gone (eraseIfUnused).
  void eraseConsumer();

  /// Erases the allocation `c` and its deallocations if nothing else uses
  /// it.
  static void eraseIfUnused(mlir::Value c);

private:
  MatmulEpilogue() = default;

  mlir::linalg::GenericOp consumer;
  /// The consumer's input that is C, or a view of it.
  mlir::Value view;
  /// For each of C's two dimensions, the sizes of the consumer dimensions
  /// it expands to.
  llvm::SmallVector<llvm::SmallVector<int64_t>, 2> groups;
};

} // namespace tessera

#endif // TESSERA_CONVERSION_MATMULEPILOGUE_H
