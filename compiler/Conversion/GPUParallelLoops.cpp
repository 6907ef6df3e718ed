//===- GPUParallelLoops.cpp - Parallel loops shaped for GPU blocks --------===//
//
// `tessera-split-reductions` gives full reductions (a sum over every
// gradient) parallel work: a one-dimensional reduction of N elements
// becomes d partial reductions of N/d elements each (thread p sums
// elements p, p + d, ..., so neighbouring threads read neighbouring
// elements) and a reduction of the d partials, which is split again while
// it is large. Without it, such a reduction ran in one GPU thread. The CPU
// pipeline uses it too, for accuracy: f32 summed one term after another
// errs by up to N ulps (1.9e-4 relative on the KJV GPT's 820k-element
// gradient norm), partial sums by about 2 sqrt(N) (2.2e-7).
//
// `gpu-map-parallel-loops` maps the outermost scf.parallel to the grid and
// a nested one to the threads of a block. The loops linalg produces are not
// nested, so each kernel would get one thread per block: a 32nd of every
// warp. Here each loop nest that is not yet in a kernel is collapsed into
// one dimension (consecutive iterations touch consecutive elements of the
// innermost dimension) and split into blocks of up to 256 iterations.
//
// `tessera-gpu-parallel-dims-outermost` reorders the loops of a generic so
// that its parallel dimensions come first. `convert-linalg-to-parallel-loops`
// emits one loop per dimension in order, so a reduction over leading
// dimensions (a bias gradient sums [B, T, D] over B and T) became a host
// loop of B * T kernel launches, each adding one row. Now each thread owns
// an output element and loops over the reduced dimensions.
//
// `tessera-gpu-interchange-row-loops` turns a host loop over rows around a
// parallel row update (the embedding gradient: acc[idx[i], :] += g[i, :])
// into one kernel whose threads each own a column and loop over the rows.
// Before, each of the N rows was a kernel launch of its own (two, with the
// self-copy bufferization left behind, which tessera-gpu-copies-to-linalg
// now drops).
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/Passes.h"

#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/Transforms/Transforms.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Dialect/SCF/Utils/Utils.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <cmath>

using namespace mlir;

namespace tessera {
#define GEN_PASS_DEF_GPUINTERCHANGEROWLOOPS
#define GEN_PASS_DEF_GPUPARALLELDIMSOUTERMOST
#define GEN_PASS_DEF_SPLITREDUCTIONS
#define GEN_PASS_DEF_GPUTILEPARALLELLOOPS
#include "compiler/Conversion/Passes.h.inc"

int64_t divisorNearSqrt(int64_t n) {
  double target = std::sqrt(double(n));
  int64_t best = 0;
  double bestDistance = 0;
  for (int64_t d = 32; d <= 65536 && d < n; ++d) {
    if (n % d)
      continue;
    double distance = std::abs(std::log(double(d) / target));
    if (!best || distance < bestDistance) {
      best = d;
      bestDistance = distance;
    }
  }
  return best;
}

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

struct SplitReductionsPass
    : impl::SplitReductionsBase<SplitReductionsPass> {
  using Base::Base;

  void runOnOperation() override {
    int64_t threshold = minSize;
    auto control = [threshold](linalg::LinalgOp op) {
      linalg::SplitReductionOptions options;
      // One reduction dimension and nothing parallel: a full reduction.
      if (op.getNumLoops() != 1 || op.getNumReductionLoops() != 1 ||
          op.getNumDpsInits() != 1)
        return options;
      SmallVector<int64_t> ranges = op.getStaticLoopRanges();
      if (ShapedType::isDynamic(ranges[0]) || ranges[0] < threshold)
        return options;
      // Inputs read through constant indices (a fused [N, 1] operand read
      // as (i) -> (i, 0)) would be split into invalid shapes.
      // Neither can a kept size-1 result written through (i) -> (0): only a
      // rank-0 result qualifies.
      for (OpOperand *input : op.getDpsInputOperands())
        if (!op.getMatchingIndexingMap(input).isProjectedPermutation())
          return options;
      if (op.getMatchingIndexingMap(op.getDpsInitOperand(0)).getNumResults())
        return options;
      options.ratio = divisorNearSqrt(ranges[0]);
      options.index = 0;
      options.innerParallel = true;
      return options;
    };
    RewritePatternSet patterns(&getContext());
    linalg::populateSplitReductionPattern(patterns, control);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

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
      // Short loops get smaller blocks (whole warps), so that they reach
      // more multiprocessors.
      int64_t tile = blockSize;
      while (tile > 32 && (*count + tile - 1) / tile < minBlocks)
        tile /= 2;
      tile = std::min<int64_t>(tile, *count);
      (void)scf::tileParallelLoop(loop, {tile}, /*noMinMaxBounds=*/true);
    }
  }
};

/// Interchanges `loop` (marked `tessera.columns_independent`) with the one
/// scf.parallel in its body. The other ops of the body may only compute
/// values and read memory (the row index, subviews); they are repeated per
/// column. Returns failure, changing nothing, when the body has another
/// shape.
LogicalResult interchange(scf::ForOp loop, RewriterBase &rewriter) {
  if (loop.getNumResults() != 0)
    return failure();
  scf::ParallelOp inner;
  for (Operation &op : loop.getBody()->without_terminator()) {
    if (auto p = dyn_cast<scf::ParallelOp>(op)) {
      if (inner || !p.getInitVals().empty())
        return failure();
      inner = p;
      continue;
    }
    if (isa<memref::SubViewOp, memref::LoadOp>(op) || isPure(&op))
      continue;
    return failure();
  }
  if (!inner)
    return failure();
  for (Value bound : llvm::concat<Value>(inner.getLowerBound(),
                                         inner.getUpperBound(), inner.getStep()))
    if (!bound.getParentRegion()->isProperAncestor(&loop.getRegion()))
      return failure();

  // parallel (cols) { for (rows) { <row ops>; <column update> } }
  rewriter.setInsertionPoint(loop);
  auto outer = scf::ParallelOp::create(rewriter, loop.getLoc(),
                                       inner.getLowerBound(),
                                       inner.getUpperBound(), inner.getStep());
  rewriter.setInsertionPointToStart(outer.getBody());
  auto rows = scf::ForOp::create(rewriter, loop.getLoc(), loop.getLowerBound(),
                                 loop.getUpperBound(), loop.getStep());
  IRMapping map;
  map.map(loop.getInductionVar(), rows.getInductionVar());
  map.map(inner.getInductionVars(), outer.getInductionVars());
  rewriter.setInsertionPointToStart(rows.getBody());
  for (Operation &op : loop.getBody()->without_terminator()) {
    if (&op != inner.getOperation()) {
      rewriter.clone(op, map);
      continue;
    }
    for (Operation &nested : inner.getBody()->without_terminator())
      rewriter.clone(nested, map);
  }
  rewriter.eraseOp(loop);
  return success();
}

struct GPUParallelDimsOutermostPass
    : impl::GPUParallelDimsOutermostBase<GPUParallelDimsOutermostPass> {
  void runOnOperation() override {
    SmallVector<linalg::GenericOp> generics;
    getOperation().walk([&](linalg::GenericOp g) { generics.push_back(g); });
    IRRewriter rewriter(&getContext());
    for (linalg::GenericOp g : generics) {
      // Old loop indices in their new order: parallel ones, then the rest,
      // each group in its original order.
      SmallVector<unsigned> order;
      SmallVector<utils::IteratorType> iterators = g.getIteratorTypesArray();
      for (bool parallel : {true, false})
        for (unsigned i = 0; i < iterators.size(); ++i)
          if ((iterators[i] == utils::IteratorType::parallel) == parallel)
            order.push_back(i);
      if (llvm::equal(order, llvm::seq<unsigned>(0, order.size())))
        continue;
      rewriter.setInsertionPoint(g);
      if (failed(linalg::interchangeGenericOp(rewriter, g, order)))
        return signalPassFailure();
    }
  }
};

struct GPUInterchangeRowLoopsPass
    : impl::GPUInterchangeRowLoopsBase<GPUInterchangeRowLoopsPass> {
  void runOnOperation() override {
    SmallVector<scf::ForOp> loops;
    getOperation().walk([&](scf::ForOp loop) {
      if (loop->hasAttr("tessera.columns_independent"))
        loops.push_back(loop);
    });
    IRRewriter rewriter(&getContext());
    for (scf::ForOp loop : loops)
      (void)interchange(loop, rewriter);
  }
};

} // namespace
} // namespace tessera
