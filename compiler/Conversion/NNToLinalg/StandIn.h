//===- StandIn.h - GPU kernels built after bufferization ---------*- C++ -*-===//
//
// Some kernels are chosen in convert-nn-to-linalg, on tensors, but need
// what only exists after bufferization: barriers and shared memory (which
// the deallocation passes reject), warp shuffles, stores into the final
// buffers. They are built in two steps. First a gpu.launch whose body only
// stands in for the kernel: it reads every input buffer and writes every
// output buffer, so bufferization and the deallocation passes see the
// kernel's uses of them; an attribute on the launch says which kernel it
// is. After bufferization, a pass replaces the body by the kernel
// (expandMmaAttention, expandWarpRows).
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_CONVERSION_NNTOLINALG_STANDIN_H
#define TESSERA_CONVERSION_NNTOLINALG_STANDIN_H

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"

namespace tessera {

/// to_buffer (read-only) of a ranked tensor.
mlir::Value readBuffer(mlir::OpBuilder &b, mlir::Location loc, mlir::Value t);
/// A fresh f32 buffer.
mlir::Value allocBuffer(mlir::OpBuilder &b, mlir::Location loc,
                        llvm::ArrayRef<int64_t> shape);
/// The tensor of a buffer a stand-in writes.
mlir::Value tensorOf(mlir::OpBuilder &b, mlir::Location loc, mlir::Value m);

/// A launch of grid (gridX, gridY) x `threads` threads, marked with
/// `attr` = `config`, whose body stands in for a kernel: it reads input i
/// at [0, ..., 0, i] and writes output i (f32) at [0, ..., 0, i], so that
/// CSE keeps the reads of one buffer passed twice apart. Buffers have rank
/// >= 1; inputs may be f32 or i32.
mlir::gpu::LaunchOp buildStandIn(mlir::OpBuilder &b, mlir::Location loc,
                                 int64_t gridX, int64_t gridY, int64_t threads,
                                 llvm::ArrayRef<mlir::Value> inputs,
                                 llvm::ArrayRef<mlir::Value> outputs,
                                 llvm::StringRef attr,
                                 mlir::DictionaryAttr config);

/// The inputs (`numInputs` of them) and outputs of a stand-in, in order.
llvm::LogicalResult readStandIn(mlir::gpu::LaunchOp launch, size_t numInputs,
                                llvm::SmallVectorImpl<mlir::Value> &inputs,
                                llvm::SmallVectorImpl<mlir::Value> &outputs);

/// Makes input `index` of a stand-in read `buffer` instead (another rank
/// or element type: f32, f16 or i32).
void replaceStandInInput(mlir::gpu::LaunchOp launch, size_t index,
                         mlir::Value buffer);

/// Makes output `index` of a stand-in write `buffer` instead (another
/// rank, or f16: the stand-in truncates what it stores).
void replaceStandInOutput(mlir::gpu::LaunchOp launch, size_t index,
                          mlir::Value buffer);

} // namespace tessera

#endif // TESSERA_CONVERSION_NNTOLINALG_STANDIN_H
