//===- RowKernels.h - Row reductions as one loop per row ---------*- C++ -*-===//
//
// Softmax, layer norm, RMS norm and cross-entropy (and their gradients)
// reduce over the last dimension and then use the result on the same row.
// Lowered as linalg, each is several loop nests (the statistics, then the
// element-wise use), which on a GPU are several kernels passing rows of
// statistics through memory. Here each is one `scf.forall` over rows: an
// iteration computes the row's statistics in registers, in loops over
// chunks of up to 4 floats, and then writes its row chunk by chunk.
// With `warps` (GPU kernels), a row is a warp's instead: its 32 lanes
// split the chunks and combine their statistics by shuffles.
//
// All builders take tensors flattened to [rows, d] (vectors [d] for
// weights, [rows] for targets) and return the same.
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_CONVERSION_NNTOLINALG_ROWKERNELS_H
#define TESSERA_CONVERSION_NNTOLINALG_ROWKERNELS_H

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"

namespace tessera {

/// Whether a reduction over the last dimension of `t` gets a row kernel:
/// static f32 of rank >= 2.
bool rowKernelApplies(mlir::RankedTensorType t);

/// softmax(x) along the last dimension.
mlir::Value buildRowSoftmax(mlir::OpBuilder &b, mlir::Location loc,
                            mlir::Value x, bool warps);

/// (x - mean) / sqrt(var + eps) * w + bias over the last dimension.
mlir::Value buildRowLayerNorm(mlir::OpBuilder &b, mlir::Location loc,
                              mlir::Value x, mlir::Value w, mlir::Value bias,
                              double eps, bool warps);

/// x / sqrt(mean(x^2) + eps) * w over the last dimension.
mlir::Value buildRowRMSNorm(mlir::OpBuilder &b, mlir::Location loc,
                            mlir::Value x, mlir::Value w, double eps, bool warps);

/// Layer norm's input gradient given the output gradient g, and each
/// row's mean and 1/sqrt(var + eps) (for the weight gradient):
/// {dx [rows, d], mean [rows], rstd [rows]}.
llvm::SmallVector<mlir::Value, 3>
buildRowLayerNormGrad(mlir::OpBuilder &b, mlir::Location loc, mlir::Value g,
                      mlir::Value x, mlir::Value w, double eps, bool warps);

/// RMS norm's input gradient and each row's 1/sqrt(mean(x^2) + eps):
/// {dx [rows, d], rstd [rows]}.
llvm::SmallVector<mlir::Value, 2>
buildRowRMSNormGrad(mlir::OpBuilder &b, mlir::Location loc, mlir::Value g,
                    mlir::Value x, mlir::Value w, double eps, bool warps);

/// Whether the warp kernel of a norm gradient over rows of `d` can sum
/// its `sums` weight (and bias) gradients itself: its blocks keep them in
/// shared memory, 4 rows of d floats each (d <= 1536 for layer norm's 2).
bool warpColumnSumsApply(int64_t d, unsigned sums);

/// Layer norm's gradient as one warp kernel (blocks of 8 rows) that also
/// sums the weight's and bias's gradient terms over each block's rows:
/// {dx [rows, d], dw partials [blocks, d], dbias partials [blocks, d]},
/// the partials to be summed over their first dimension.
llvm::SmallVector<mlir::Value, 3>
buildWarpLayerNormGradSums(mlir::OpBuilder &b, mlir::Location loc,
                           mlir::Value g, mlir::Value x, mlir::Value w,
                           double eps);

/// RMS norm's gradient likewise: {dx [rows, d], dw partials [blocks, d]}.
llvm::SmallVector<mlir::Value, 2>
buildWarpRMSNormGradSums(mlir::OpBuilder &b, mlir::Location loc,
                         mlir::Value g, mlir::Value x, mlir::Value w,
                         double eps);

/// Each row's cross-entropy logsumexp(l) - l[target] ([rows]) for logits
/// [rows, classes] and i32 targets [rows].
mlir::Value buildRowCrossEntropy(mlir::OpBuilder &b, mlir::Location loc,
                                 mlir::Value logits, mlir::Value targets, bool warps);

/// (softmax(l) - onehot(target)) * g * scale, g a rank-0 tensor.
mlir::Value buildRowCrossEntropyGrad(mlir::OpBuilder &b, mlir::Location loc,
                                     mlir::Value logits, mlir::Value targets,
                                     mlir::Value g, double scale,
                                     bool warps);

/// Both of the above in one kernel, which computes each row's softmax
/// statistics once: {dx [rows, classes], loss per row [rows]}.
std::pair<mlir::Value, mlir::Value>
buildRowCrossEntropyWithGrad(mlir::OpBuilder &b, mlir::Location loc,
                             mlir::Value logits, mlir::Value targets,
                             mlir::Value g, double scale, bool warps);

/// The first input of a stand-in that a builder above made with `warps`
/// (the rows: x, logits, or g for the gradients), or null for other
/// launches. Where its values are exact in bf16/f16, it may be replaced
/// (replaceStandInInput) by an f16-typed buffer of them, marked with
/// setWarpRowsHalves; the kernel widens what it reads.
mlir::Value warpRowsFirstInput(mlir::gpu::LaunchOp launch);
void setWarpRowsHalves(mlir::gpu::LaunchOp launch, llvm::StringRef format);

/// Replaces the stand-in body of a launch that a builder above made with
/// `warps` by its kernel; leaves other launches alone.
llvm::LogicalResult expandWarpRows(mlir::gpu::LaunchOp launch);

} // namespace tessera

#endif // TESSERA_CONVERSION_NNTOLINALG_ROWKERNELS_H
