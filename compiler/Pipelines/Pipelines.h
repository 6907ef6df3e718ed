//===- Pipelines.h - Named lowering pipelines -------------------*- C++ -*-===//

#ifndef TESSERA_COMPILER_PIPELINES_PIPELINES_H
#define TESSERA_COMPILER_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassManager.h"

namespace tessera {

/// nn -> linalg/tensor/arith/math (`--emit=linalg`).
mlir::LogicalResult buildNNToLinalgPipeline(mlir::OpPassManager &pm);

/// nn -> LLVM dialect for the host CPU (`--emit=llvm`): bufferize, loops,
/// LLVM. With `useBlas`, f32 linear/matmul call the runtime's BLAS-backed
/// kernels (link libtessera_cpu_kernels); other contractions are scalar
/// loops (see bench/RESULTS.md).
/// tessera-mixed-precision with `format` (bf16 or f16).
mlir::LogicalResult buildMixedPrecisionPipeline(mlir::OpPassManager &pm,
                                                llvm::StringRef format);

/// `train_step` from `loss` (tessera-autodiff), then canonicalize and CSE.
mlir::LogicalResult buildAutodiffPipeline(mlir::OpPassManager &pm,
                                         bool scaleLoss = false);

/// nn to NVVM for `chip` (sm_80, sm_90, ...): half-precision contractions
/// become tiled mma.sync kernels, every other linalg op a kernel of
/// parallel loops in 256-thread blocks; all kernels in one gpu.module,
/// compiled to PTX (`gpu.binary` with the assembly; no CUDA needed).
/// `format` is "isa" (PTX text; needs no CUDA) or "fatbin" (ptxas and
/// fatbinary from the CUDA toolkit, found on PATH or under $CUDA_ROOT,
/// $CUDA_HOME or $CUDA_PATH).
/// `wgmmaTile` ("128x128x4", the default, "128x128x3", "128x128x6",
/// "128x256x4" or
/// "128x256x3": block rows x columns x stages) shapes sm_90a's matmul
/// kernels; an unknown one fails. `wgmmaLoads` says how they load their
/// operands: "cp.async" (or empty, the default), "tma" (TMA in
/// warp-specialized kernels; PTX 8.3) or "tma-persistent" (the same, with
/// one block per multiprocessor walking the tiles); an unknown one fails.
/// `wgmmaSplitK` says where they split K over several blocks per tile of
/// C: "auto" (or empty, the default: where the tiles alone would leave
/// multiprocessors of an H100 idle), "off", or a number of splits (2, 4, 8
/// or 16) for every matmul whose K tiles it divides. `wgmmaGroupRows`
/// ("1", "2", "4", "8" or "16"; empty for the default, 8) is how many rows
/// of tiles of C the blocks walk together, column by column.
mlir::LogicalResult buildGPULoweringPipeline(
    mlir::OpPassManager &pm, llvm::StringRef chip,
    llvm::StringRef format = "isa", llvm::StringRef wgmmaTile = "",
    llvm::StringRef wgmmaLoads = "", llvm::StringRef wgmmaSplitK = "",
    llvm::StringRef wgmmaGroupRows = "");

/// Whether `loads` names a way of loading of buildGPULoweringPipeline.
bool isWgmmaLoads(llvm::StringRef loads);

/// Whether `splitK` is a split-K setting of buildGPULoweringPipeline.
bool isWgmmaSplitK(llvm::StringRef splitK);

/// Whether `rows` is a tile grouping of buildGPULoweringPipeline.
bool isWgmmaGroupRows(llvm::StringRef rows);

/// Whether `tile` names a matmul tile of buildGPULoweringPipeline.
bool isWgmmaTile(llvm::StringRef tile);

/// The GPU pipeline without tensor cores, up to its kernels, with each
/// kernel launch run as CPU loops over blocks and threads and lowered to
/// the LLVM dialect: a CPU package that computes what the GPU pipeline's
/// kernels compute (tests check it against the CPU pipeline).
mlir::LogicalResult buildGPUEmulationPipeline(mlir::OpPassManager &pm);

mlir::LogicalResult buildCPULoweringPipeline(mlir::OpPassManager &pm,
                                             bool useBlas = true);

/// Registers `tessera-nn-to-linalg`, `tessera-lower-to-llvm` (BLAS) and
/// `tessera-lower-to-llvm-loops` (no external kernels).
void registerTesseraPipelines();

} // namespace tessera

#endif // TESSERA_COMPILER_PIPELINES_PIPELINES_H
