//===- GPUParallelLoops.cpp - Parallel loops shaped for GPU blocks --------===//
//
// `gpu-map-parallel-loops` maps the outermost scf.parallel to the grid and
// a nested one to the threads of a block. The loops linalg produces are not
// nested, so each kernel would get one thread per block: a 32nd of every
// warp. Here each loop nest that is not yet in a kernel is collapsed into
// one dimension (consecutive iterations touch consecutive elements of the
// innermost dimension) and split into blocks of up to 256 iterations.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/Passes.h"

#include "mlir/Dialect/SCF/Transforms/Transforms.h"
#include "mlir/Dialect/SCF/Utils/Utils.h"
#include "mlir/IR/PatternMatch.h"

using namespace mlir;

namespace tessera {
#define GEN_PASS_DEF_GPUTILEPARALLELLOOPS
#include "compiler/Conversion/Passes.h.inc"

namespace {

/// The number of iterations of `loop`, when its bounds are constants.
std::optional<int64_t> tripCount(scf::ParallelOp loop) {
  int64_t count = 1;
  for (auto [lb, ub, step] : llvm::zip(loop.getLowerBound(),
                                       loop.getUpperBound(), loop.getStep())) {
    std::optional<int64_t> l = getConstantIntValue(lb);
    std::optional<int64_t> u = getConstantIntValue(ub);
    std::optional<int64_t> s = getConstantIntValue(step);
    if (!l || !u || !s || *s <= 0)
      return std::nullopt;
    count *= std::max<int64_t>(0, (*u - *l + *s - 1) / *s);
  }
  return count;
}

struct GPUTileParallelLoopsPass
    : impl::GPUTileParallelLoopsBase<GPUTileParallelLoopsPass> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<scf::ParallelOp> roots;
    getOperation().walk([&](scf::ParallelOp loop) {
      if (!loop->getParentOfType<scf::ParallelOp>() &&
          !loop->getParentOfType<gpu::LaunchOp>() &&
          loop.getInitVals().empty())
        roots.push_back(loop);
    });
    IRRewriter rewriter(&getContext());
    for (scf::ParallelOp loop : roots) {
      std::optional<int64_t> count = tripCount(loop);
      if (!count || *count <= 1)
        continue;
      // One dimension, in row-major order of the original ones.
      if (loop.getNumLoops() > 1) {
        Operation *next = loop->getNextNode();
        std::vector<unsigned> all(loop.getNumLoops());
        std::iota(all.begin(), all.end(), 0u);
        rewriter.setInsertionPoint(loop);
        collapseParallelLoops(rewriter, loop, {all});
        loop = cast<scf::ParallelOp>(next->getPrevNode());
      }
      int64_t tile = std::min<int64_t>(blockSize, *count);
      (void)scf::tileParallelLoop(loop, {tile}, /*noMinMaxBounds=*/true);
    }
  }
};

} // namespace
} // namespace tessera
