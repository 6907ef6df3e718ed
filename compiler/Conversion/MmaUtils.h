//===- MmaUtils.h - Shared pieces of the tensor-core kernels ----*- C++ -*-===//
//
// The tensor-core kernels (GPUTensorCores.cpp's matmuls, MmaAttention.cpp's
// attention) build nvgpu.mma.sync on f16-typed fragments, whatever the
// format of their bits; this turns the bf16 ones into what they mean.
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_CONVERSION_MMAUTILS_H
#define TESSERA_CONVERSION_MMAUTILS_H

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"

namespace tessera {

/// The attribute that tessera-gpu-select-tensor-cores puts on the
/// contractions it rebuilds for the tensor cores; its value is the format
/// of the operands' bits ("bf16" or "f16").
constexpr llvm::StringLiteral kMmaAttr = "tessera.mma";

/// Rewrites every nvgpu.mma.sync in `launch` (f16-typed operands holding
/// bf16 bits) into an nvvm.mma.sync of type bf16. The fragment layouts of
/// m16n8k16 are the same for both types; only the operand registers are
/// i32 (two bf16 each) instead of vector<2xf16>.
llvm::LogicalResult retypeMmaToBF16(mlir::gpu::LaunchOp launch);

class ConsumerEpilogue;

/// The copies with whole 16-byte rows that wgmma kernels read instead of
/// an operand: a later kernel that reads the same operand (or an equal
/// view of its buffer) reads the same copy if nothing may have written the
/// operand since the copy was made.
struct PaddedCopies {
  /// For each operand copied, the linalg.copy that makes the copy and the
  /// copy's dealloc.
  llvm::DenseMap<mlir::Value, std::pair<mlir::Operation *, mlir::Operation *>>
      copies;
  /// The kernels built so far: they write nothing but their epilogues'
  /// outputs.
  llvm::SmallPtrSet<mlir::Operation *, 8> kernels;
};

/// How buildWgmmaMatmul builds its kernels.
struct WgmmaOptions {
  /// Columns of a block's tile (128 or 256; 128 where 256 does not divide
  /// N) and stages of the K ring (3 to 6; at most 4 with 256 columns).
  int64_t tileN = 128, stages = 4;
  /// Load operands whose addresses and row strides are static multiples of
  /// 16 bytes with TMA, in a warp-specialized kernel (a producer warpgroup,
  /// two consumers, mbarriers); the host then calls the runtime's
  /// tesseraTensorMap2D for their descriptors. With `persistent` too, the
  /// grid has one block per multiprocessor (tesseraMultiprocessorCount),
  /// each walking tiles, so a tile's epilogue overlaps the loads of the
  /// block's next tile.
  bool tma = false, persistent = false;
  /// Split-K (WgmmaMatmul.cpp, finishTile): 0 never; -1 where a model of a
  /// GPU of `multiprocessors` says the tiles of C alone would leave
  /// multiprocessors idle; N >= 2 in N wherever N divides the K tiles.
  int64_t splitK = 0;
  int64_t multiprocessors = 132;
  /// Blocks walk the tiles of C in groups of this many rows of tiles,
  /// column by column within a group (1: row by row).
  int64_t groupRows = 1;
};

/// Replaces the marked contraction `g` (on buffers, C zero-filled before
/// it: C[M, N] f32 = A[M, K] or A[K, M]^T x B[K, N] or B[N, K]^T,
/// f16-typed operands holding bf16 bits when `bf16`) by a gpu.launch of the
/// sm_90a warpgroup-MMA kernel (WgmmaMatmul.cpp), which writes every
/// element of C: blocks own 128 x `tileN` tiles and stage K through a ring
/// of `stages`. Any M, N and K: tiles that reach past M, N or K read zeros
/// there and store nothing past M and N; an operand whose rows are not
/// whole 16-byte pieces is read from a copy whose rows are. With
/// `epilogue`, the kernel runs the consumer of C on the accumulators
/// instead of storing C, and replaces it too. With `copies`, copies of
/// operands are shared with the other kernels built with it.
llvm::LogicalResult buildWgmmaMatmul(mlir::linalg::GenericOp g, bool bf16,
                                     const WgmmaOptions &options,
                                     ConsumerEpilogue *epilogue = nullptr,
                                     PaddedCopies *copies = nullptr);

} // namespace tessera

#endif // TESSERA_CONVERSION_MMAUTILS_H
