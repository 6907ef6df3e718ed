//===- PrecisionToLinalg.cpp - precision ops to linalg --------------------===//

#include "compiler/Conversion/Passes.h"
#include "dialects/precision/IR/PrecisionDialect.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

using namespace mlir;

namespace tessera {
#define GEN_PASS_DEF_CONVERTPRECISIONTOLINALG
#include "compiler/Conversion/Passes.h.inc"

namespace {
/// round -> an element-wise generic computing extf(truncf(x)).
struct RoundLowering : OpRewritePattern<precision::RoundOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(precision::RoundOp op,
                                PatternRewriter &b) const override {
    auto t = cast<RankedTensorType>(op.getType());
    if (!t.hasStaticShape())
      return failure();
    Type low = op.getFormat() == "bf16" ? Type(b.getBF16Type())
                                        : Type(b.getF16Type());
    MLIRContext *ctx = b.getContext();
    auto id = AffineMap::getMultiDimIdentityMap(t.getRank(), ctx);
    Value empty = tensor::EmptyOp::create(b, op.getLoc(), t.getShape(),
                                          t.getElementType());
    auto generic = linalg::GenericOp::create(
        b, op.getLoc(), TypeRange{t}, ValueRange{op.getInput()},
        ValueRange{empty}, SmallVector<AffineMap>{id, id},
        SmallVector<utils::IteratorType>(t.getRank(),
                                         utils::IteratorType::parallel),
        [&](OpBuilder &nb, Location l, ValueRange a) {
          Value lowered = arith::TruncFOp::create(nb, l, low, a[0]);
          linalg::YieldOp::create(
              nb, l, arith::ExtFOp::create(nb, l, nb.getF32Type(), lowered)
                         .getResult());
        });
    b.replaceOp(op, generic.getResult(0));
    return success();
  }
};

struct ConvertPrecisionToLinalgPass
    : impl::ConvertPrecisionToLinalgBase<ConvertPrecisionToLinalgPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<RoundLowering>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
} // namespace tessera
