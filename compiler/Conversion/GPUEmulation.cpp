//===- GPUEmulation.cpp - GPU launches as CPU loops, for testing ----------===//
//
// No GPU is needed to check what the GPU pipeline computes, as long as its
// kernels are plain data-parallel code: `tessera-gpu-emulate-launches`
// runs after `tessera-gpu-legalize-host` (so every transformation of the
// GPU pipeline up to kernel outlining has happened) and turns each
// gpu.launch into loops over its blocks and threads, in order, on the CPU.
// gpu.alloc/dealloc become memref.alloc/dealloc. `tessera compile --target
// gpu-emulator` uses it to make a CPU package from the GPU pipeline, which
// the tests compare with the CPU pipeline's package (tests/lit/gpu/).
//
// Threads run one after another, so a kernel whose threads communicate
// (barriers, shared memory: the tensor-core matmuls) cannot be emulated;
// the emulator pipeline leaves contractions on the plain path, and any
// such kernel is an error.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/Passes.h"

#include "mlir/IR/IRMapping.h"

using namespace mlir;

namespace tessera {
#define GEN_PASS_DEF_GPUEMULATELAUNCHES
#include "compiler/Conversion/Passes.h.inc"

namespace {

LogicalResult emulate(gpu::LaunchOp launch, RewriterBase &rewriter) {
  if (!launch.getAsyncDependencies().empty() || launch.getAsyncToken())
    return launch.emitError("cannot emulate an asynchronous launch");
  if (launch.getNumWorkgroupAttributions() || launch.getNumPrivateAttributions())
    return launch.emitError("cannot emulate a kernel with shared or private "
                            "memory attributions");
  if (!launch.getBody().hasOneBlock())
    return launch.emitError("cannot emulate a kernel of several blocks");
  WalkResult walk = launch.getBody().walk([](Operation *op) {
    StringRef dialect = op->getName().getDialectNamespace();
    return isa<gpu::BarrierOp>(op) || dialect == "nvgpu" || dialect == "nvvm"
               ? WalkResult::interrupt()
               : WalkResult::advance();
  });
  if (walk.wasInterrupted())
    return launch.emitError("cannot emulate a kernel whose threads "
                            "synchronize or use NVIDIA-specific ops");

  Location loc = launch.getLoc();
  rewriter.setInsertionPoint(launch);
  Value zero = arith::ConstantIndexOp::create(rewriter, loc, 0);
  Value one = arith::ConstantIndexOp::create(rewriter, loc, 1);
  gpu::KernelDim3 grid = launch.getGridSizeOperandValues();
  gpu::KernelDim3 block = launch.getBlockSizeOperandValues();
  SmallVector<Value> ivs;
  for (Value bound : {grid.x, grid.y, grid.z, block.x, block.y, block.z}) {
    auto loop = scf::ForOp::create(rewriter, loc, zero, bound, one);
    ivs.push_back(loop.getInductionVar());
    rewriter.setInsertionPoint(loop.getBody()->getTerminator());
  }
  IRMapping map;
  gpu::KernelDim3 blockIds = launch.getBlockIds(), threadIds = launch.getThreadIds();
  gpu::KernelDim3 gridArgs = launch.getGridSize(), blockArgs = launch.getBlockSize();
  Value from[] = {blockIds.x, blockIds.y, blockIds.z, threadIds.x,
                  threadIds.y, threadIds.z, gridArgs.x, gridArgs.y,
                  gridArgs.z, blockArgs.x, blockArgs.y, blockArgs.z};
  Value to[] = {ivs[0], ivs[1], ivs[2], ivs[3], ivs[4], ivs[5],
                grid.x, grid.y, grid.z, block.x, block.y, block.z};
  for (auto [f, t] : llvm::zip(from, to))
    map.map(f, t);
  for (Operation &op : launch.getBody().front().without_terminator()) {
    Operation *copy = rewriter.clone(op, map);
    // Ids and sizes queried inside the body (serial kernels do).
    copy->walk([&](Operation *inner) {
      auto pick = [&](gpu::Dimension d, ArrayRef<Value> xyz) {
        rewriter.replaceOp(inner, xyz[unsigned(d)]);
      };
      if (auto id = dyn_cast<gpu::BlockIdOp>(inner))
        pick(id.getDimension(), {ivs[0], ivs[1], ivs[2]});
      else if (auto id = dyn_cast<gpu::ThreadIdOp>(inner))
        pick(id.getDimension(), {ivs[3], ivs[4], ivs[5]});
      else if (auto dim = dyn_cast<gpu::GridDimOp>(inner))
        pick(dim.getDimension(), {grid.x, grid.y, grid.z});
      else if (auto dim = dyn_cast<gpu::BlockDimOp>(inner))
        pick(dim.getDimension(), {block.x, block.y, block.z});
    });
  }
  rewriter.eraseOp(launch);
  return success();
}

struct GPUEmulateLaunchesPass
    : impl::GPUEmulateLaunchesBase<GPUEmulateLaunchesPass> {
  void runOnOperation() override {
    IRRewriter rewriter(&getContext());
    SmallVector<gpu::LaunchOp> launches;
    getOperation().walk([&](gpu::LaunchOp l) { launches.push_back(l); });
    for (gpu::LaunchOp launch : launches)
      if (failed(emulate(launch, rewriter)))
        return signalPassFailure();
    SmallVector<Operation *> memoryOps;
    getOperation().walk([&](Operation *op) {
      if (isa<gpu::AllocOp, gpu::DeallocOp>(op))
        memoryOps.push_back(op);
    });
    for (Operation *op : memoryOps) {
      rewriter.setInsertionPoint(op);
      if (auto alloc = dyn_cast<gpu::AllocOp>(op)) {
        if (alloc.getAsyncToken() || !alloc.getDynamicSizes().empty()) {
          alloc.emitError("cannot emulate an asynchronous or dynamic gpu.alloc");
          return signalPassFailure();
        }
        rewriter.replaceOpWithNewOp<memref::AllocOp>(
            alloc, alloc.getMemref().getType(), ValueRange{},
            rewriter.getI64IntegerAttr(64));
      } else {
        auto dealloc = cast<gpu::DeallocOp>(op);
        if (dealloc.getAsyncToken()) {
          dealloc.emitError("cannot emulate an asynchronous gpu.dealloc");
          return signalPassFailure();
        }
        rewriter.replaceOpWithNewOp<memref::DeallocOp>(dealloc,
                                                       dealloc.getMemref());
      }
    }
  }
};

} // namespace
} // namespace tessera
