//===- Pipelines.h - Named lowering pipelines -------------------*- C++ -*-===//

#ifndef TESSERA_COMPILER_PIPELINES_PIPELINES_H
#define TESSERA_COMPILER_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassManager.h"

namespace tessera {

/// nn -> linalg/tensor/arith/math (`--emit=linalg`).
mlir::LogicalResult buildNNToLinalgPipeline(mlir::OpPassManager &pm);

/// nn -> LLVM dialect for the host CPU (`--emit=llvm`): bufferize, loops,
/// LLVM. Contractions are still scalar loops here; tiling/vectorization is
/// the next step (see docs/compiler.md).
mlir::LogicalResult buildCPULoweringPipeline(mlir::OpPassManager &pm);

/// Registers both as `tessera-nn-to-linalg` and `tessera-lower-to-llvm`.
void registerTesseraPipelines();

} // namespace tessera

#endif // TESSERA_COMPILER_PIPELINES_PIPELINES_H
