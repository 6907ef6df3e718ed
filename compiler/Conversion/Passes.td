//===- Passes.td - Tessera conversion passes ----------------*- tablegen -*-===//

#ifndef TESSERA_CONVERSION_PASSES
#define TESSERA_CONVERSION_PASSES

include "mlir/Pass/PassBase.td"

def ConvertNNToLinalg : Pass<"convert-nn-to-linalg", "mlir::ModuleOp"> {
  let summary = "Lower nn ops to linalg/tensor/arith/math on static shapes";
  let description = [{
    Element-wise ops become `linalg.generic` with broadcasting indexing maps;
    `linear` and `matmul` become contractions (`linalg.generic` with a
    reduction dimension, zero-filled accumulators); `transpose` becomes
    `linalg.transpose` and `reshape` `tensor.reshape`. Ops not covered yet,
    and ops with dynamic dimensions, are reported as errors.
  }];
  let options = [
    Option<"useBlas", "use-blas", "bool", /*default=*/"false",
           "Lower f32 linear and rank-2 matmul to calls of the runtime's "
           "BLAS-backed kernels (libtessera_cpu_kernels)">,
    Option<"flashAttention", "flash-attention", "bool", /*default=*/"false",
           "Lower f32 attention and its gradient (head dimensions <= 128) "
           "to flash-style row loops (scf.forall with an online softmax) "
           "that never build a (queries x keys) tensor">,
    Option<"mmaAttention", "mma-attention", "bool", /*default=*/"false",
           "With flash-attention: the forward pass of attention on "
           "bf16/f16-rounded operands (the mixed-precision policy's) as a "
           "GPU kernel on tensor cores (mma.sync) when its shapes allow "
           "(sequence lengths multiples of 64, head dimensions multiples of "
           "16 up to 128). The kernel's launch is a stand-in until "
           "tessera-gpu-tensor-core-matmuls builds its body after "
           "bufferization">,
    Option<"rowKernels", "row-kernels", "bool", /*default=*/"false",
           "Lower f32 softmax (last dimension), layer and RMS norm (one "
           "normalized dimension), cross-entropy and their gradients to one "
           "scf.forall over rows each: the row's statistics stay in "
           "registers instead of separate reductions; and the embedding "
           "gradient as one loop per (block of table rows, column)">,
    Option<"warpRows", "warp-rows", "bool", /*default=*/"false",
           "With row-kernels: each row of those ops (not the embedding "
           "gradient) as a warp of 32 GPU threads that split its columns and "
           "combine their statistics by shuffles, 8 rows per block. The "
           "kernel's launch is a stand-in until tessera-gpu-tensor-core-"
           "matmuls builds its body after bufferization">
  ];
  let dependentDialects = ["mlir::linalg::LinalgDialect",
                           "mlir::bufferization::BufferizationDialect",
                           "mlir::memref::MemRefDialect",
                           "mlir::func::FuncDialect",
                           "mlir::tensor::TensorDialect",
                           "mlir::arith::ArithDialect",
                           "mlir::math::MathDialect",
                           "mlir::scf::SCFDialect",
                           "mlir::vector::VectorDialect",
                           "mlir::gpu::GPUDialect",
                           "mlir::nvgpu::NVGPUDialect",
                           "mlir::NVVM::NVVMDialect",
                           "mlir::LLVM::LLVMDialect",
                           "mlir::ub::UBDialect"];
}

def ConvertOptimToLinalg : Pass<"convert-optim-to-linalg", "mlir::ModuleOp"> {
  let summary = "Lower optim steps to element-wise linalg.generic over flat buffers";
  let description = [{
    `adamw_step`, `sgd_step`: one generic producing every updated buffer in
    one pass; `clip_by_global_norm` and `global_norm`: a reduction, then (for
    clipping) one scaling pass. Hyper-parameters are read once, outside the
    loops; derived scalars are computed in f64.
  }];
  let dependentDialects = ["mlir::linalg::LinalgDialect",
                           "mlir::tensor::TensorDialect",
                           "mlir::arith::ArithDialect",
                           "mlir::math::MathDialect"];
}

def MergeGPUModules : Pass<"tessera-merge-gpu-modules", "mlir::ModuleOp"> {
  let summary = "Moves every outlined kernel into one gpu.module";
  let description = [{
    `gpu-kernel-outlining` makes one gpu.module per kernel; a package wants
    one PTX module per function. Kernel names are unique, so the functions
    move into the first module and each `gpu.launch_func` is re-pointed.
    Workgroup (shared-memory) buffers get 16-byte alignment, which
    cp.async and ldmatrix need. Kernels with mma.sync get
    `nvvm.minctasm = 1` (`.minnctapersm 1`): ptxas may otherwise cap a
    128-thread kernel at 128 registers and spill its fragments.
  }];
  let dependentDialects = ["mlir::gpu::GPUDialect", "mlir::LLVM::LLVMDialect",
                           "mlir::NVVM::NVVMDialect"];
}

def GPUMathToPTX : Pass<"tessera-gpu-math-to-ptx", "mlir::gpu::GPUModuleOp"> {
  let summary = "f32/f64 sqrt/floor/ceil/abs/round in kernels as PTX instructions";
  let description = [{
    convert-gpu-to-nvvm sends these to libdevice (`__nv_sqrtf`, ...), which
    is part of the CUDA toolkit. PTX has them as instructions (`sqrt.rn.f32`
    is the correctly rounded square root), so they become inline PTX and
    the kernels need no libdevice: PTX is produced without CUDA. 1-D
    vectors (the row kernels' chunks) become one instruction per lane.
  }];
  let dependentDialects = ["mlir::LLVM::LLVMDialect",
                           "mlir::vector::VectorDialect"];
}

def ConvertPrecisionToLinalg : Pass<"convert-precision-to-linalg", "mlir::ModuleOp"> {
  let summary = "Lower precision ops: round to truncf/extf, unscale_and_check to a scaling pass and a finite-check reduction";
  let dependentDialects = ["mlir::linalg::LinalgDialect", "mlir::math::MathDialect",
                           "mlir::tensor::TensorDialect",
                           "mlir::arith::ArithDialect"];
}

def ApproximateMath : Pass<"tessera-approximate-math"> {
  let summary = "Replace f32 tanh/exp/log/erf calls by polynomial approximations";
  let description = [{
    MLIR's polynomial approximations (a few ulp in f32) instead of libm
    calls, so the loops around them stay call-free and LLVM vectorizes them.
    On the GPT forward, libm's tanhf/expm1f/expf took 19% of the time
    (bench/RESULTS.md). Applies to f32 scalars and vectors only.
  }];
  let dependentDialects = ["mlir::arith::ArithDialect",
                           "mlir::math::MathDialect",
                           "mlir::vector::VectorDialect"];
}

def GPUSelectTensorCoreMatmuls
    : Pass<"tessera-gpu-select-tensor-cores", "mlir::ModuleOp"> {
  let summary = "Rewrite half-precision-exact f32 contractions as f16/bf16 "
                "matmuls with f32 accumulation, marked for tensor cores";
  let description = [{
    Runs on linalg-on-tensors, before `convert-precision-to-linalg`. A
    contraction (`linalg.generic`: out[m, n] += a[m, k] * b[k, n] or
    b[n, k], leading dimensions of `a` flattened into m) whose operands are
    `precision.round` results in one format, possibly through transposes and
    reshapes, is rebuilt on half-precision operands (a transposed operand is
    read in place through the other indexing map: b[n, k] for b[k, n], and
    a[k, m] for the a[m, k] of a weight's gradient): the values are the
    same, so the result is too. The new contraction carries
    `tessera.mma = "bf16"|"f16"`; `tessera-gpu-tensor-core-matmuls` turns it
    into an mma.sync kernel. bf16 operands travel as f16-typed tensors
    holding bf16 bits, bitcast back to bf16 in the contraction's body (the
    IR stays exact and runs on the CPU too); MLIR 22's vector-to-nvgpu path
    only knows f16, so the kernel is generated as f16 and its mma.sync
    instructions are retyped to bf16. Shapes must tile: m and n multiples
    of 128, k of 32; other contractions keep the SIMT lowering. With
    `ragged-shapes` (sm_90a, whose warpgroup-MMA kernel takes partial
    tiles), any shape; a transposed operand is read in place only where
    its rows read that way are multiples of 8 elements (16-byte copies).
  }];
  let options = [Option<"raggedShapes", "ragged-shapes", "bool",
                        /*default=*/"false",
                        "Select contractions of any shape (for the wgmma "
                        "kernel), not only those that 128 x 128 x 32 tiles "
                        "cover">];
  let dependentDialects = ["mlir::linalg::LinalgDialect",
                           "mlir::tensor::TensorDialect",
                           "mlir::arith::ArithDialect"];
}

def GPUTensorCoreMatmuls
    : Pass<"tessera-gpu-tensor-core-matmuls", "mlir::ModuleOp"> {
  let summary = "Generate mma.sync kernels for contractions marked tessera.mma";
  let description = [{
    Runs on buffers, before the remaining linalg ops become parallel loops.
    Each marked contraction gets a transform-dialect schedule (TOOLCHAIN.md):
    128x128 block tiles, a K loop in steps of 32 whose A/B tiles are staged
    in shared memory with 16-byte cp.async copies, 2x2 warps of 64x64,
    vector contractions unrolled to m16n8k16, then ldmatrix + mma.sync
    through `nvgpu`. The accumulators live in registers across the K loop.
    Shared buffers become workgroup attributions of the generated
    gpu.launch, and bf16 contractions get bf16 mma.sync instructions.

    With `wgmma` (sm_90a), contractions whose K is a multiple of 64 get the
    warpgroup-MMA kernel of WgmmaMatmul.cpp instead: 128x128 block tiles
    over two warpgroups, a 4-stage cp.async ring in 128-byte-swizzled
    shared memory, wgmma.mma_async m64n128k16 from shared-memory
    descriptors. A read as a[k, m] (M-major) is copied to M x K for
    mma.sync, which reads it K-major only.

    It also builds the kernels that convert-nn-to-linalg left as stand-in
    launches: attention on tensor cores (mma-attention) and the row
    kernels' warp per row (warp-rows).
  }];
  let options = [Option<"wgmma", "wgmma", "bool", /*default=*/"false",
                        "Use sm_90a warpgroup MMA (wgmma) for the matmuls">,
                 Option<"wgmmaTileN", "wgmma-tile-n", "int64_t",
                        /*default=*/"128",
                        "With wgmma: columns of a block's tile, 128 or 256 "
                        "(128 where 256 does not divide N)">,
                 Option<"wgmmaStages", "wgmma-stages", "int64_t",
                        /*default=*/"4",
                        "With wgmma: shared-memory stages of the K ring, 3 "
                        "to 6 (at most 4 with 256 columns)">,
                 Option<"wgmmaTma", "wgmma-tma", "bool", /*default=*/"false",
                        "With wgmma: load operands with TMA in "
                        "warp-specialized kernels (where their addresses "
                        "and row strides allow) instead of cp.async">,
                 Option<"wgmmaPersistent", "wgmma-persistent", "bool",
                        /*default=*/"false",
                        "With wgmma-tma: one block per multiprocessor, each "
                        "walking the tiles of C">,
                 Option<"wgmmaSplitK", "wgmma-split-k", "int64_t",
                        /*default=*/"0",
                        "With wgmma: split K over several blocks per tile of "
                        "C: 0 never, -1 where the tiles alone would leave "
                        "multiprocessors idle (a model of a GPU of "
                        "wgmma-multiprocessors), N >= 2 in N where N divides "
                        "the K tiles">,
                 Option<"wgmmaMultiprocessors", "wgmma-multiprocessors",
                        "int64_t", /*default=*/"132",
                        "With wgmma-split-k=-1: the multiprocessors the "
                        "model plans for (132: H100 SXM, H200)">,
                 Option<"wgmmaGroupRows", "wgmma-group-rows", "int64_t",
                        /*default=*/"1",
                        "With wgmma: blocks walk the tiles of C in groups of "
                        "this many rows of tiles, column by column within a "
                        "group, so that the blocks running at once share "
                        "operand tiles in L2 (1: row by row)">];
  let dependentDialects = ["mlir::transform::TransformDialect",
                           "mlir::gpu::GPUDialect",
                           "mlir::nvgpu::NVGPUDialect",
                           "mlir::NVVM::NVVMDialect",
                           "mlir::LLVM::LLVMDialect",
                           "mlir::vector::VectorDialect",
                           "mlir::scf::SCFDialect",
                           "mlir::affine::AffineDialect",
                           "mlir::memref::MemRefDialect"];
}

def GPUCopiesToLinalg : Pass<"tessera-gpu-copies-to-linalg", "mlir::func::FuncOp"> {
  let summary = "memref.copy on the host to linalg.copy, so copies become kernels";
  let description = [{
    Bufferization and `buffer-results-to-out-params` copy buffers with
    `memref.copy`, which the host would execute on device memory. As
    `linalg.copy` they become parallel loops and then kernels like every
    other structured op. A copy onto itself (the same buffer, or identical
    subviews, left by in-place slice updates) is dropped. A copy of a
    reshaped temporary into a function's out-parameter (a bias gradient's
    [1, N] sum collapsed to [N]) is dropped too: the temporary becomes the
    matching view of the out-parameter, when nothing uses the temporary
    after the copy and nothing else uses the out-parameter.
  }];
  let dependentDialects = ["mlir::linalg::LinalgDialect"];
}

def GPULegalizeHost : Pass<"tessera-gpu-legalize-host", "mlir::ModuleOp"> {
  let summary = "Keep the host code of GPU functions off device memory";
  let description = [{
    Runs after `convert-parallel-loops-to-gpu`, before outlining. The host
    side of a GPU function may only allocate, free, describe buffers and
    launch kernels; it never reads or writes their contents, which live in
    device memory:
    - scalars that kernels take from buffers (a `memref.load` and the
      arithmetic on it, e.g. optimizer hyper-parameters) are recomputed
      inside each kernel that uses them, after checking that no kernel in
      between writes that buffer;
    - constant globals used by kernels are referenced from the kernels, so
      outlining copies them into the GPU module (device constants);
    - what is left of host code touching memory (reductions without a
      parallel dimension, rank-0 updates) is wrapped in one-thread
      kernels, in order;
    - `memref.alloc`/`memref.dealloc` become `gpu.alloc`/`gpu.dealloc`.
    What cannot be legalized is reported as an error at the operation.
  }];
  let dependentDialects = ["mlir::gpu::GPUDialect", "mlir::arith::ArithDialect",
                           "mlir::memref::MemRefDialect"];
}

def GPUAsyncTensorMaps : Pass<"tessera-gpu-async-tensor-maps", "mlir::func::FuncOp"> {
  let summary = "Keep the host from waiting for the GPU around TMA descriptor calls";
  let description = [{
    Runs after `gpu-async-region`, which makes the host wait for the stream
    before any call it cannot see through, and start a new chain of work
    after it. A call of the runtime's `tesseraTensorMap2D` (the descriptors
    of the TMA matmul kernels) or `tesseraMultiprocessorCount` (the
    persistent kernels' grid) never reads device memory:
    where such calls and side-effect-free ops are all that lies between a
    `gpu.wait [%t]` and a `gpu.wait async`, both waits go and the work after
    them depends on `%t`, so the stream never drains between two kernels.
  }];
  let dependentDialects = ["mlir::gpu::GPUDialect"];
}

def GPUTileParallelLoops : Pass<"tessera-gpu-tile-parallel-loops", "mlir::func::FuncOp"> {
  let summary = "Collapse each host-level scf.parallel and split it into thread blocks";
  let description = [{
    Before `gpu-map-parallel-loops`: every outermost scf.parallel that is
    not inside a kernel is collapsed into one dimension and tiled by
    `block-size`, so the outer loop becomes the grid and the inner one the
    threads of a block (consecutive threads touch consecutive elements).
    Loops too short to give `min-blocks` blocks of that size get smaller
    blocks, down to a warp (32 threads): a row kernel over GPT-2's 8192
    rows is 128 blocks of 64 threads rather than 32 blocks of 256, which
    would leave 100 of an H100's 132 multiprocessors idle.
  }];
  let options = [Option<"blockSize", "block-size", "int64_t", "256",
                        "Threads per block">,
                 Option<"minBlocks", "min-blocks", "int64_t", "128",
                        "Halve blocks (down to 32 threads) while the loop "
                        "gives fewer blocks than this">];
  let dependentDialects = ["mlir::scf::SCFDialect", "mlir::arith::ArithDialect",
                           "mlir::affine::AffineDialect"];
}

def GPUParallelDimsOutermost : Pass<"tessera-gpu-parallel-dims-outermost", "mlir::func::FuncOp"> {
  let summary = "Reorder linalg.generic loops so that parallel dimensions come first";
  let description = [{
    Before `convert-linalg-to-parallel-loops`, which emits one loop per
    dimension in order: a reduction over leading dimensions (a bias
    gradient summing [B, T, D] over B and T, the partial sums of
    `tessera-split-reductions`) would otherwise be a host loop that
    launches one kernel per reduced element. With the parallel dimensions
    first, each GPU thread owns an output element and loops over the
    reduced dimensions in their original order.
  }];
  let dependentDialects = ["mlir::linalg::LinalgDialect"];
}

def GPUInterchangeRowLoops : Pass<"tessera-gpu-interchange-row-loops", "mlir::func::FuncOp"> {
  let summary = "Run a host loop of parallel row updates as one kernel over columns";
  let description = [{
    After `convert-linalg-to-parallel-loops`. An `scf.for` marked
    `tessera.columns_independent` (the embedding gradient's loop over rows,
    `acc[idx[i], :] += g[i, :]`) whose body computes indices and subviews
    and runs one `scf.parallel` over the row's columns becomes an
    `scf.parallel` over the columns, each looping over the rows in order:
    one kernel instead of one launch per row, with the CPU's summation
    order. Loops of another shape are left alone.
  }];
  let dependentDialects = ["mlir::scf::SCFDialect", "mlir::memref::MemRefDialect"];
}

def PromoteAccumulators : Pass<"tessera-promote-accumulators", "mlir::func::FuncOp"> {
  let summary = "Carry reduction accumulators in loop iter_args, not memory";
  let description = [{
    Runs on loops over buffers (after `convert-linalg-to-parallel-loops`).
    Parallel loop nests with the same iteration space fuse first
    (scf::naivelyFuseParallelOps with LocalAliasAnalysis; allocations move
    up and frees down past loop nests so that they do not keep them apart).
    An element that an `scf.for` loads and
    stores at loop-invariant indices, untouched otherwise in the loop,
    becomes an iter_arg: loaded before the loop, stored after it. A stored
    value is forwarded to later loads of the same element in the block, and
    a store overwritten before anything may read it is erased. Together
    they turn a reduction's identity fill (fused into the reduction's loop
    nest) and its load/add/store per term into `scf.for iter_args(%acc =
    %identity)` and one store: on the GPU, one kernel instead of two and
    no memory traffic per term. Accesses that may alias (LocalAliasAnalysis)
    and ops with unknown effects block the rewrite. Buffers left only
    written are erased.
  }];
  let dependentDialects = ["mlir::scf::SCFDialect", "mlir::memref::MemRefDialect"];
}

def SplitReductions : Pass<"tessera-split-reductions", "mlir::func::FuncOp"> {
  let summary = "Split large one-dimensional full reductions into partial reductions";
  let description = [{
    On tensors, before bufferization. A `linalg.generic` that reduces N
    >= `min-size` elements to a scalar becomes d partial reductions (d the
    divisor of N closest to sqrt(N); partial p takes elements p, p + d, ...)
    and a reduction of the partials, split again while it is large. On a
    GPU the partials run in parallel threads instead of one; on both CPU
    and GPU the f32 sum is more accurate (error ~2 sqrt(N) ulps instead of
    up to N) and both pipelines add in the same order.
  }];
  let options = [Option<"minSize", "min-size", "int64_t", "4096",
                        "Smallest reduction that is split">];
  let dependentDialects = ["mlir::linalg::LinalgDialect",
                           "mlir::tensor::TensorDialect"];
}

def FuseElementwise : Pass<"tessera-fuse-elementwise", "mlir::func::FuncOp"> {
  let summary = "Fuse element-wise linalg.generic chains into their consumers";
  let description = [{
    On tensors, before bufferization. Each element-wise `linalg.generic`
    whose only user is another `linalg.generic` (element-wise or a
    reduction) is merged into it, so a chain becomes one loop nest: one
    kernel on a GPU, no temporaries on the CPU. Contractions marked
    `tessera.mma` are left alone, and a producer with math-dialect ops is
    not fused into a consumer that broadcasts it (it would be recomputed
    per broadcast element).
  }];
  let dependentDialects = ["mlir::linalg::LinalgDialect",
                           "mlir::tensor::TensorDialect"];
}

def NarrowStorage : Pass<"tessera-narrow-storage", "mlir::func::FuncOp"> {
  let summary = "Store f32 tensors of bf16/f16-rounded values as 16-bit tensors";
  let description = [{
    On tensors, after element-wise fusion. An element-wise `linalg.generic`
    result that yields `extf(truncf(x))` (a `precision.round`, possibly
    fused with what it rounds) and whose readers are all non-mma
    `linalg.generic` inputs, through expand/collapse_shape, is stored as
    16 bits: the producer yields the truncated value (bf16 bits in an
    f16-typed tensor) and each reader extends it in its body. The values
    are unchanged; the bytes written and read halve. A narrowed rounding
    and a tensor-core twin of the same input become one op; run
    element-wise fusion after the pass to fold their producer into it.
  }];
  let dependentDialects = ["mlir::arith::ArithDialect",
                           "mlir::linalg::LinalgDialect",
                           "mlir::tensor::TensorDialect"];
}

def GPUEmulateLaunches : Pass<"tessera-gpu-emulate-launches", "mlir::ModuleOp"> {
  let summary = "Run gpu.launch bodies as CPU loops over blocks and threads (testing)";
  let description = [{
    After `tessera-gpu-legalize-host`, before outlining: each `gpu.launch`
    becomes six nested `scf.for` loops (grid x, y, z, then block x, y, z)
    around its body, and `gpu.alloc`/`gpu.dealloc` become
    `memref.alloc`/`memref.dealloc`. The CPU then computes what the GPU
    pipeline's kernels compute, with threads one after another. Kernels
    whose threads synchronize (barriers, shared memory, NVIDIA ops such as
    mma.sync) are errors.
  }];
  let dependentDialects = ["mlir::scf::SCFDialect", "mlir::memref::MemRefDialect",
                           "mlir::arith::ArithDialect"];
}

#endif // TESSERA_CONVERSION_PASSES

def GPUVectorAccess : Pass<"tessera-gpu-vector-access", "mlir::func::FuncOp"> {
  let summary = "Row reads and writes in kernels as aligned vector loads and stores";
  let description = [{
    After `convert-parallel-loops-to-gpu`: one-dimensional
    `vector.transfer_read`/`transfer_write` ops inside `gpu.launch` (the
    rows of the flash-attention loops) become `vector.load`/`vector.store`,
    and each gets the largest alignment (up to 16 bytes) that its memref's
    static offset and strides, its constant indices and its buffer's
    origin prove. Buffers from `gpu.alloc`, `memref.alloc` and function
    arguments (the runtime's allocations, 256-byte aligned on the GPU) are
    assumed 16-byte aligned; views of them are followed back. With the
    alignment known, LLVM emits 128-bit loads (`ld.global.v4.f32`) instead
    of one 32-bit load per element.
  }];
  let options = [
    Option<"alignedArguments", "aligned-arguments", "bool", /*default=*/"true",
           "Assume function arguments 16-byte aligned (GPU buffers are; the "
           "emulator's host tensors may be mapped from a file at any offset)">
  ];
  let dependentDialects = ["mlir::vector::VectorDialect",
                           "mlir::memref::MemRefDialect"];
}
