//===- FuseElementwise.cpp - Fuse element-wise chains on tensors ----------===//
//
// The lowering of `nn` emits one `linalg.generic` per operation, so an
// expression like `gelu(x @ w + b)` or the body of a layer norm is a chain
// of loops that each read and write a full tensor. On a GPU every one of
// them is a kernel and a round trip through device memory; on the CPU a
// temporary buffer. `tessera-fuse-elementwise` merges each element-wise
// producer into its consumer (another element-wise op or a reduction such
// as the sums of a softmax or a layer norm) with upstream linalg fusion,
// under a control function that keeps what must stay apart:
//
//   - contractions marked for the tensor cores (`tessera.mma`) keep their
//     operands: the mma.sync schedule reads plain half-precision tensors;
//   - a producer with several users is not duplicated into each of them;
//   - a producer with transcendental math (exp, tanh, rsqrt, ...) is not
//     fused into a consumer that broadcasts it, which would evaluate it once
//     per broadcast element instead of once.
//
// Two kinds of ops sit between element-wise ops and would stop fusion:
// reshapes (splitting attention heads, flattening [B, T, D] for a matmul)
// and transposes. Static `tensor.reshape`s become expand/collapse_shape,
// which upstream patterns move through generics by reshaping their loops;
// transposes read only by generics become generics themselves, so a
// transposed read is an indexing map of the consumer.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/Passes.h"
#include "compiler/Conversion/MmaUtils.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/ReshapeOpsUtils.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

using namespace mlir;

namespace tessera {
#define GEN_PASS_DEF_FUSEELEMENTWISE
#include "compiler/Conversion/Passes.h.inc"

namespace {

bool hasTranscendental(linalg::GenericOp op) {
  return op.getBody()
      ->walk([](Operation *inner) {
        return isa<math::MathDialect>(inner->getDialect())
                   ? WalkResult::interrupt()
                   : WalkResult::advance();
      })
      .wasInterrupted();
}

bool isMma(Operation *op) { return op && op->hasAttr(kMmaAttr); }

/// A static `tensor.reshape` as an expand_shape or collapse_shape, or both
/// through a one-dimensional tensor when it is neither (for instance
/// [6, 4] -> [4, 6]).
struct StaticReshapeToExpandCollapse : OpRewritePattern<tensor::ReshapeOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(tensor::ReshapeOp op,
                                PatternRewriter &rewriter) const override {
    auto from = cast<RankedTensorType>(op.getSource().getType());
    auto to = cast<RankedTensorType>(op.getResult().getType());
    if (!from.hasStaticShape() || !to.hasStaticShape())
      return failure();
    if (from.getRank() == to.getRank()) {
      if (from.getShape() != to.getShape())
        return failure(); // Left as a copy through memory.
      rewriter.replaceOp(op, op.getSource());
      return success();
    }
    if (std::optional<SmallVector<ReassociationIndices>> groups =
            getReassociationIndicesForReshape(from, to)) {
      if (from.getRank() > to.getRank())
        rewriter.replaceOpWithNewOp<tensor::CollapseShapeOp>(
            op, to, op.getSource(), *groups);
      else
        rewriter.replaceOpWithNewOp<tensor::ExpandShapeOp>(
            op, to, op.getSource(), *groups);
      return success();
    }
    return failure();
  }
};

/// A `linalg.transpose` whose users are all (non-mma) generics, as a
/// generic with a permuted indexing map.
struct GeneralizeTransposeIntoGenerics
    : OpRewritePattern<linalg::TransposeOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(linalg::TransposeOp op,
                                PatternRewriter &rewriter) const override {
    for (Operation *user : op->getUsers())
      if (!isa<linalg::GenericOp>(user) || isMma(user))
        return failure();
    return linalg::generalizeNamedOp(rewriter, op);
  }
};

/// Reshapes move through generics that are not mma contractions.
bool shouldFoldReshape(OpOperand *fused) {
  return !isMma(fused->get().getDefiningOp()) && !isMma(fused->getOwner());
}

bool shouldFuse(OpOperand *fused) {
  auto producer = fused->get().getDefiningOp<linalg::GenericOp>();
  auto consumer = dyn_cast<linalg::GenericOp>(fused->getOwner());
  if (!producer || !consumer || !producer->hasOneUse())
    return false;
  if (isMma(producer) || isMma(consumer))
    return false;
  AffineMap read = consumer.getMatchingIndexingMap(fused);
  return read.isPermutation() || !hasTranscendental(producer);
}

struct FuseElementwisePass
    : impl::FuseElementwiseBase<FuseElementwisePass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    linalg::populateElementwiseOpsFusionPatterns(patterns, shouldFuse);
    patterns.add<StaticReshapeToExpandCollapse, GeneralizeTransposeIntoGenerics>(
        &getContext());
    linalg::populateFoldReshapeOpsByExpansionPatterns(patterns,
                                                      shouldFoldReshape);
    // Fusion leaves inputs the fused body no longer reads, and duplicate
    // inputs; dropping them keeps the kernels' argument lists short.
    linalg::populateEraseUnusedOperandsAndResultsPatterns(patterns);
    linalg::GenericOp::getCanonicalizationPatterns(patterns, &getContext());
    tensor::EmptyOp::getCanonicalizationPatterns(patterns, &getContext());
    tensor::ExpandShapeOp::getCanonicalizationPatterns(patterns, &getContext());
    tensor::CollapseShapeOp::getCanonicalizationPatterns(patterns,
                                                         &getContext());
    // Not converging within the driver's iteration limit leaves valid IR
    // that is fused less; it is not an error.
    (void)applyPatternsGreedily(getOperation(), std::move(patterns));
  }
};

} // namespace
} // namespace tessera
