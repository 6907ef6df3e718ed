//===- FlashAttention.h - Attention without T x S tensors -------*- C++ -*-===//
//
// Attention and its gradients as loops over rows with an online softmax
// (the FlashAttention recurrence): each query row keeps its running max,
// sum and output in vectors, so no tensor of shape (queries, keys) exists.
// The loops are `scf.forall` over (batch, row) on tensors; after
// bufferization the GPU pipeline maps them to threads.
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_CONVERSION_FLASHATTENTION_H
#define TESSERA_CONVERSION_FLASHATTENTION_H

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"

namespace tessera {

/// Whether attention over q [N, T, D], k [N, S, D], v [N, S, E] (batch
/// dimensions flattened) gets the flash lowering: f32, and head dimensions
/// small enough that a row lives in registers.
bool flashAttentionApplies(mlir::RankedTensorType q, mlir::RankedTensorType v);

struct FlashForward {
  mlir::Value out; ///< [N, T, E]
  mlir::Value lse; ///< [N, T]: each query row's log-sum-exp, if asked for
};

/// softmax(q k^T * scale (+ causal mask)) v for rank-3 q, k, v; with
/// `withLse`, also the log-sum-exp of each row's scores (for the backward
/// pass, which then need not recompute it).
FlashForward buildFlashAttention(mlir::OpBuilder &b, mlir::Location loc,
                                 mlir::Value q, mlir::Value k, mlir::Value v,
                                 double scale, bool causal, bool withLse = false);

/// {dq, dk, dv} of the above, given the gradient g and the forward result
/// o (both [N, T, E]). Three loops: dq per query row (it also writes each
/// row's g.o and, unless the forward pass's `forwardLse` is given, first
/// computes the row's log-sum-exp in a pass of its own), then dv and dk
/// per key row.
llvm::SmallVector<mlir::Value, 3>
buildFlashAttentionGrad(mlir::OpBuilder &b, mlir::Location loc, mlir::Value g,
                        mlir::Value q, mlir::Value k, mlir::Value v,
                        mlir::Value o, double scale, bool causal,
                        mlir::Value forwardLse = {});

/// Whether attention over q [N, T, D], k [N, S, D], v [N, S, E] can run
/// as buildMmaAttention's kernel: static shapes, T and S multiples of 64,
/// D and E multiples of 16 up to 128.
bool mmaAttentionApplies(mlir::RankedTensorType q, mlir::RankedTensorType k,
                         mlir::RankedTensorType v);

/// buildFlashAttention as a GPU kernel on tensor cores, for q, k, v whose
/// f32 values are exactly representable in `format` ("bf16" or "f16"): the
/// products take them in that format and accumulate in f32; the
/// probabilities are rounded to it before they multiply v. Builds, between
/// bufferization.to_buffer and to_tensor, a gpu.launch whose body only
/// stands in for the kernel (barriers would stop the deallocation passes);
/// expandMmaAttention builds the kernel once the buffers are final.
FlashForward buildMmaAttention(mlir::OpBuilder &b, mlir::Location loc,
                               mlir::Value q, mlir::Value k, mlir::Value v,
                               double scale, bool causal, bool withLse,
                               llvm::StringRef format);

/// {dq, dk, dv} of buildMmaAttention's attention, given the gradient g and
/// the forward pass's out and lse: two kernels on tensor cores, one for dq
/// (it also writes D = rowsum(g o)) and one for dk and dv. g and the
/// gradients of the scores are rounded to `format` where they enter the
/// products. Stand-in launches, as in buildMmaAttention.
llvm::SmallVector<mlir::Value, 3>
buildMmaAttentionGrad(mlir::OpBuilder &b, mlir::Location loc, mlir::Value g,
                      mlir::Value q, mlir::Value k, mlir::Value v,
                      mlir::Value o, mlir::Value lse, double scale, bool causal,
                      llvm::StringRef format);

/// The inputs of an mma attention stand-in (on tensors) that may be given
/// as halves of its format instead of f32: q, k, v and, for the gradient
/// kernels, dO, in that order. Each may be replaced (replaceStandInInput)
/// by an f16-typed buffer of the same values, [N, T, C] like the f32 one
/// or [B, T, H, C] with N = B H (heads not split off, read in place).
struct MmaAttentionInputs {
  std::string format;
  llvm::SmallVector<mlir::Value> buffers;
  /// The gradient kernels' outputs dq, dk or dv (f32 [N, T, D] buffers,
  /// outputs 0... of the launch; D, which the dq kernel also writes,
  /// excluded): each may be replaced (replaceStandInOutput) by an
  /// f16-typed [B, T, H, D] view, into which the kernel stores the
  /// gradient rounded to the format.
  llvm::SmallVector<mlir::Value> gradOutputs;
  /// The forward kernel's output O (output 0, f32 [N, T, E]), null for the
  /// others: it may be replaced by an f16-typed [B, T, H, E] view as the
  /// gradients may. The dq kernel reads O (`gradQOutput`, input 4) to
  /// compute D = rowsum(dO O); that input may be such a view too.
  mlir::Value forwardOutput;
  /// The dq kernel's input O, null for the other kernels.
  mlir::Value gradQOutput;
};
/// std::nullopt for other launches.
std::optional<MmaAttentionInputs>
mmaAttentionHalfInputs(mlir::gpu::LaunchOp launch);

/// Replaces the stand-in body of a launch from buildMmaAttention or
/// buildMmaAttentionGrad by its kernel; leaves other launches alone.
llvm::LogicalResult expandMmaAttention(mlir::gpu::LaunchOp launch);

} // namespace tessera

#endif // TESSERA_CONVERSION_FLASHATTENTION_H
