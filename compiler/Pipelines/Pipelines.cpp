//===- Pipelines.cpp - Named lowering pipelines ---------------------------===//

#include "compiler/Pipelines/Pipelines.h"

#include "compiler/Conversion/Passes.h"
#include "dialects/nn/Transforms/Passes.h"
#include "dialects/precision/Transforms/Passes.h"

#include "mlir/InitAllPasses.h"

#include "mlir/Pass/PassRegistry.h"

#include "llvm/ADT/StringExtras.h"

#include <mutex>

using namespace mlir;

namespace tessera {

/// The pipelines are written as pass-pipeline text, so every pass they name
/// must be registered first (tessera-opt does this too; registering twice is
/// harmless but done once).
static void registerPassesOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    registerAllPasses();
    registerTesseraConversionPasses();
    nn::registerTesseraNNPasses();
    precision::registerTesseraPrecisionPasses();
  });
}

LogicalResult buildNNToLinalgPipeline(OpPassManager &pm) {
  registerPassesOnce();
  return parsePassPipeline("convert-nn-to-linalg", pm);
}

LogicalResult buildMixedPrecisionPipeline(OpPassManager &pm,
                                         llvm::StringRef format) {
  registerPassesOnce();
  return parsePassPipeline("tessera-mixed-precision{format=" + format.str() + "}",
                           pm);
}

LogicalResult buildAutodiffPipeline(OpPassManager &pm, bool scaleLoss) {
  registerPassesOnce();
  // The backward pass repeats forward values and constants; fold them.
  return parsePassPipeline(std::string("tessera-autodiff") +
                               (scaleLoss ? "{scale-loss}" : "") +
                               ",canonicalize,cse",
                           pm);
}

/// scf loops over memrefs to the LLVM dialect, on the CPU.
static std::string cpuLoopsToLLVM() {
  const std::vector<std::string> passes = {
      "convert-scf-to-cf",
      // Subviews and reshapes to plain descriptors before LLVM conversion.
      "expand-strided-metadata",
      "lower-affine",
      "finalize-memref-to-llvm",
      // f32 tanh/exp/log as polynomials: no libm calls in the loops, so
      // LLVM can vectorize them (libm took 19% of a GPT forward).
      "tessera-approximate-math",
      // The rest of math (rsqrt, ...) to LLVM intrinsics or libm calls.
      "convert-math-to-llvm",
      // Everything else (arith, cf, func, index) to the LLVM dialect.
      "convert-to-llvm",
      "reconcile-unrealized-casts",
  };
  return llvm::join(passes, ",");
}

LogicalResult buildCPULoweringPipeline(OpPassManager &pm, bool useBlas) {
  registerPassesOnce();
  const std::vector<std::string> passes = {
      // nn ops become linalg.generic / linalg.transpose / tensor ops; f32
      // GEMMs become runtime kernel calls when BLAS is used (10-30x faster
      // than the scalar loops, bench/RESULTS.md).
      useBlas ? "convert-nn-to-linalg{use-blas}" : "convert-nn-to-linalg",
      // Optimizer steps: one element-wise pass over the flat buffers.
      "convert-optim-to-linalg",
      // Mixed precision: roundings to bf16/f16 around the products.
      "convert-precision-to-linalg",
      // Fold the element-wise chains the lowering produced, then fuse each
      // into one loop nest (no temporaries between them).
      "canonicalize", "func.func(tessera-fuse-elementwise)", "canonicalize",
      // Large full reductions (the gradient norm) as sqrt(N) partial sums:
      // an f32 sum of N positive terms one after another errs by up to
      // N ulps, partial sums by about 2 sqrt(N). The GPU sums the same way.
      "func.func(tessera-split-reductions)",
      // Tensors to buffers, function signatures included.
      "one-shot-bufferize{bufferize-function-boundaries "
      "function-boundary-type-conversion=identity-layout-map}",
      // Results become caller-allocated out-parameters (the runtime owns
      // outputs), then every temporary buffer gets freed.
      "buffer-results-to-out-params{modify-public-functions}",
      "ownership-based-buffer-deallocation",
      "canonicalize",
      "buffer-deallocation-simplification",
      "bufferization-lower-deallocations",
      // Structured ops to scf loops (scalar for now).
      "convert-linalg-to-loops",
  };
  return parsePassPipeline(llvm::join(passes, ",") + "," + cpuLoopsToLLVM(), pm);
}

/// The GPU pipeline up to kernels in host functions (gpu.launch) whose host
/// side only allocates, frees and launches. `tensorCores` = false leaves
/// every contraction on the plain path (the emulator cannot run mma.sync).
static std::vector<std::string> gpuKernelPasses(bool tensorCores) {
  std::vector<std::string> passes = {
      // Attention as flash-style row loops (scf.forall, online softmax):
      // no (queries x keys) tensor, forward or backward; with tensor
      // cores, the forward pass on bf16/f16 operands as an mma.sync
      // kernel. Softmax, the norms and cross-entropy as one loop per row
      // each (row kernels).
      // With tensor cores (the GPU, not the emulator, which runs no warp
      // shuffles): a warp per row of the row kernels.
      std::string("convert-nn-to-linalg{flash-attention row-kernels") +
          (tensorCores ? " mma-attention warp-rows}" : "}"),
      "convert-optim-to-linalg",
      // Contractions on bf16/f16-rounded operands become half-precision
      // matmuls for the tensor cores (before the roundings are lowered).
      "tessera-gpu-select-tensor-cores",
      "convert-precision-to-linalg", "canonicalize",
      // Element-wise chains become one loop nest each, and element-wise
      // producers join the reductions that read them: fewer kernels.
      "func.func(tessera-fuse-elementwise)", "canonicalize",
      // Rounded tensors that stay in memory (an activation the backward
      // pass reads again) are stored as 16 bits and widened by their
      // readers; a rounding and its tensor-core twin become one op, and
      // what they read fuses into it.
      "func.func(tessera-narrow-storage)",
      "func.func(tessera-fuse-elementwise)", "canonicalize",
      // Full reductions (the gradient norm) get parallel partial sums.
      "func.func(tessera-split-reductions)",
      "one-shot-bufferize{bufferize-function-boundaries "
      "function-boundary-type-conversion=identity-layout-map}",
      // Results are computed straight into the caller's out-parameters (a
      // result copied at the end cost GPT-2's forward 3.3 of its 6.0 GB).
      // An output the runtime passes aliased with an input (the optimizer
      // updating params, exp_avg, exp_avg_sq in place) is written element
      // by element from the same element of the input, so this is safe.
      "buffer-results-to-out-params{modify-public-functions "
      "hoist-static-allocs}",
      // Temporaries are freed (gpu.dealloc once on the device).
      "ownership-based-buffer-deallocation", "canonicalize",
      "buffer-deallocation-simplification",
      "bufferization-lower-deallocations",
      // Marked contractions: tiled mma.sync kernels (gpu.launch).
      "tessera-gpu-tensor-core-matmuls",
      // Parallel dimensions become grid/block dimensions, reductions stay
      // sequential loops inside the kernel. Copies are kernels too.
      // Reductions over leading dimensions and the embedding gradient's
      // loop over rows become one kernel each instead of a launch per
      // reduced row.
      // The attention loops join the other parallel loops; their row
      // reads and writes become vector loads and stores.
      "func.func(scf-forall-to-parallel,tessera-gpu-copies-to-linalg,"
      "tessera-gpu-parallel-dims-outermost,"
      "convert-linalg-to-parallel-loops,canonicalize,"
      "tessera-gpu-interchange-row-loops,"
      // A reduction's identity fill joins the reduction's loop nest, and
      // the accumulator stays in a register: one kernel, no load and store
      // per term.
      "tessera-promote-accumulators,"
      "tessera-gpu-tile-parallel-loops,"
      "gpu-map-parallel-loops,convert-parallel-loops-to-gpu)",
      // The host side only allocates, frees and launches.
      "tessera-gpu-legalize-host",
  };
  if (!tensorCores)
    llvm::erase_if(passes, [](const std::string &p) {
      return StringRef(p).contains("tensor-core");
    });
  return passes;
}

bool isWgmmaTile(StringRef tile) {
  static constexpr llvm::StringLiteral tiles[] = {"128x128x4", "128x128x3",
                                                  "128x128x6",
                                                  "128x256x4", "128x256x3"};
  return llvm::is_contained(tiles, tile);
}

bool isWgmmaLoads(StringRef loads) {
  return loads.empty() || loads == "cp.async" || loads == "tma" ||
         loads == "tma-persistent";
}

bool isWgmmaSplitK(StringRef splitK) {
  return llvm::is_contained({"", "auto", "off", "2", "4", "8", "16"}, splitK);
}

bool isWgmmaGroupRows(StringRef rows) {
  return llvm::is_contained({"", "1", "2", "4", "8", "16"}, rows);
}

LogicalResult buildGPULoweringPipeline(OpPassManager &pm, StringRef chip,
                                       StringRef format, StringRef wgmmaTile,
                                       StringRef wgmmaLoads,
                                       StringRef wgmmaSplitK,
                                       StringRef wgmmaGroupRows) {
  if (wgmmaTile.empty())
    wgmmaTile = "128x128x4";
  if (wgmmaGroupRows.empty())
    wgmmaGroupRows = "8";
  if (!isWgmmaTile(wgmmaTile) || !isWgmmaLoads(wgmmaLoads) ||
      !isWgmmaSplitK(wgmmaSplitK) || !isWgmmaGroupRows(wgmmaGroupRows))
    return failure();
  // The pass's wgmma-split-k: -1 plans with its model, 0 never splits.
  StringRef splitK = wgmmaSplitK.empty() || wgmmaSplitK == "auto" ? "-1"
                     : wgmmaSplitK == "off"                      ? "0"
                                                                 : wgmmaSplitK;
  bool wgmmaTma = wgmmaLoads.starts_with("tma");
  registerPassesOnce();
  std::vector<std::string> passes = gpuKernelPasses(/*tensorCores=*/true);
  // Hopper: matmuls on warpgroup MMA, an arch-specific feature of sm_90a
  // (its code runs on sm_90 devices only).
  bool hopper = chip == "sm_90" || chip == "sm_90a";
  if (hopper) {
    chip = "sm_90a";
    for (std::string &p : passes) {
      // Partial tiles too: the wgmma kernel masks them.
      if (p == "tessera-gpu-select-tensor-cores")
        p += "{ragged-shapes}";
      if (p == "tessera-gpu-tensor-core-matmuls")
        p += ("{wgmma wgmma-tile-n=" + wgmmaTile.substr(4, 3) +
              " wgmma-stages=" + wgmmaTile.substr(8, 1) +
              (wgmmaTma ? " wgmma-tma" : "") +
              (wgmmaLoads == "tma-persistent" ? " wgmma-persistent" : "") +
              " wgmma-split-k=" + splitK +
              " wgmma-group-rows=" + wgmmaGroupRows + "}")
                 .str();
    }
  }
  passes.insert(passes.end(), {
      // Rows of the attention loops: 128-bit loads where alignment is
      // proven. Kernel arguments come from cuMemAlloc (256-byte aligned)
      // in 512-byte blocks.
      "func.func(tessera-gpu-vector-access)",
      // Constants (and index arithmetic on them) that canonicalization
      // hoisted out of the launches go back in before outlining: else each
      // becomes a kernel parameter, and a division by a tile size or a
      // row width a 64-bit division by an unknown (dozens of instructions)
      // instead of a shift or a multiplication.
      "gpu-launch-sink-index-computations",
      "gpu-kernel-outlining", "tessera-merge-gpu-modules",
      // One stream per call: allocations, frees and launches are queued in
      // order and the host waits once, at the end.
      "func.func(gpu-async-region)",
      // ... except around the TMA descriptor calls, which need no wait.
      "func.func(tessera-gpu-async-tensor-maps)", "lower-affine",
      // No libdevice calls: exp/tanh/log as polynomials, rsqrt as 1/sqrt.
      "tessera-approximate-math", "math-expand-ops",
      // sqrt, floor, ... as PTX instructions instead of libdevice calls.
      "gpu.module(tessera-gpu-math-to-ptx)", "canonicalize",
      // PTX 8.0 assembles for sm_80 and sm_90 alike (TOOLCHAIN.md); the
      // TMA kernels' fence.proxy.tensormap needs 8.3. With format=fatbin
      // MLIR runs ptxas and fatbinary: machine code for `chip` plus the
      // PTX.
      "gpu-lower-to-nvvm-pipeline{cubin-chip=" + chip.str() +
          " cubin-features=+ptx" + (hopper && wgmmaTma ? "83" : "80") +
          " cubin-format=" + format.str() + "}",
  });
  return parsePassPipeline(llvm::join(passes, ","), pm);
}

LogicalResult buildGPUEmulationPipeline(OpPassManager &pm) {
  registerPassesOnce();
  std::vector<std::string> passes = gpuKernelPasses(/*tensorCores=*/false);
  // Each launch as loops over its blocks and threads, then the CPU's
  // lowering of those loops.
  // Host tensors can be mapped from a file at any offset: only the
  // alignment of allocations is assumed.
  passes.push_back("func.func(tessera-gpu-vector-access{aligned-arguments=false})");
  passes.push_back("tessera-gpu-emulate-launches");
  return parsePassPipeline(llvm::join(passes, ",") + "," + cpuLoopsToLLVM(),
                           pm);
}

void registerTesseraPipelines() {
  registerPassesOnce();
  PassPipelineRegistration<>(
      "tessera-nn-to-linalg", "Lower Tessera's nn dialect to linalg",
      [](OpPassManager &pm) { (void)buildNNToLinalgPipeline(pm); });
  PassPipelineRegistration<>(
      "tessera-lower-to-llvm",
      "Lower Tessera's nn dialect to the LLVM dialect for the host CPU "
      "(f32 GEMMs call libtessera_cpu_kernels)",
      [](OpPassManager &pm) { (void)buildCPULoweringPipeline(pm, true); });
  PassPipelineRegistration<>(
      "tessera-lower-to-llvm-loops",
      "Like tessera-lower-to-llvm, but every contraction stays a loop nest",
      [](OpPassManager &pm) { (void)buildCPULoweringPipeline(pm, false); });
  PassPipelineRegistration<>(
      "tessera-lower-to-nvvm",
      "Lower Tessera's nn dialect to NVVM and PTX for sm_90 (mma.sync "
      "kernels for half-precision matmuls, naive kernels elsewhere)",
      [](OpPassManager &pm) { (void)buildGPULoweringPipeline(pm, "sm_90"); });
  PassPipelineRegistration<>(
      "tessera-gpu-emulator",
      "The GPU pipeline's kernels (without tensor cores) as CPU loops, "
      "lowered to the LLVM dialect: what a GPU would compute, without one",
      [](OpPassManager &pm) { (void)buildGPUEmulationPipeline(pm); });
}

} // namespace tessera
