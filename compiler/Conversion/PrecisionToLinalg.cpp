//===- PrecisionToLinalg.cpp - precision ops to linalg --------------------===//

#include "compiler/Conversion/Passes.h"
#include "dialects/precision/IR/PrecisionDialect.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <limits>

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

/// unscale_and_check -> a scaling generic and a max-reduction of the
/// "not finite" flags.
struct UnscaleLowering : OpRewritePattern<precision::UnscaleAndCheckOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(precision::UnscaleAndCheckOp op,
                                PatternRewriter &b) const override {
    auto t = cast<RankedTensorType>(op.getGrads().getType());
    if (t.getRank() != 1 || !t.hasStaticShape())
      return failure();
    Location l = op.getLoc();
    MLIRContext *ctx = b.getContext();
    Type f32 = b.getF32Type();
    Value scale = tensor::ExtractOp::create(b, l, op.getScale(), ValueRange{});
    Value inv = arith::DivFOp::create(
        b, l, arith::ConstantOp::create(b, l, b.getF32FloatAttr(1.0)), scale);
    auto id = AffineMap::getMultiDimIdentityMap(1, ctx);
    Value empty = tensor::EmptyOp::create(b, l, t.getShape(), f32);
    Value unscaled =
        linalg::GenericOp::create(
            b, l, TypeRange{t}, ValueRange{op.getGrads()}, ValueRange{empty},
            SmallVector<AffineMap>{id, id},
            SmallVector<utils::IteratorType>{utils::IteratorType::parallel},
            [&](OpBuilder &nb, Location ll, ValueRange a) {
              linalg::YieldOp::create(
                  nb, ll, arith::MulFOp::create(nb, ll, a[0], inv).getResult());
            })
            .getResult(0);
    auto scalarT = RankedTensorType::get({}, f32);
    Value zero = arith::ConstantOp::create(b, l, b.getF32FloatAttr(0.0));
    Value emptyScalar = tensor::EmptyOp::create(b, l, SmallVector<int64_t>{}, f32);
    Value acc = linalg::FillOp::create(b, l, zero, emptyScalar).getResult(0);
    Value flag =
        linalg::GenericOp::create(
            b, l, TypeRange{scalarT}, ValueRange{op.getGrads()}, ValueRange{acc},
            SmallVector<AffineMap>{id, AffineMap::get(1, 0, {}, ctx)},
            SmallVector<utils::IteratorType>{utils::IteratorType::reduction},
            [&](OpBuilder &nb, Location ll, ValueRange a) {
              // finite <=> |x| != inf, ordered (false for NaN).
              Value inf = arith::ConstantOp::create(
                  nb, ll, nb.getF32FloatAttr(std::numeric_limits<float>::infinity()));
              Value finite = arith::CmpFOp::create(
                  nb, ll, arith::CmpFPredicate::ONE,
                  math::AbsFOp::create(nb, ll, a[0]), inf);
              Value bad = arith::SelectOp::create(
                  nb, ll, finite,
                  arith::ConstantOp::create(nb, ll, nb.getF32FloatAttr(0.0)),
                  arith::ConstantOp::create(nb, ll, nb.getF32FloatAttr(1.0)));
              linalg::YieldOp::create(
                  nb, ll, arith::MaximumFOp::create(nb, ll, a[1], bad).getResult());
            })
            .getResult(0);
    b.replaceOp(op, {unscaled, flag});
    return success();
  }
};

struct ConvertPrecisionToLinalgPass
    : impl::ConvertPrecisionToLinalgBase<ConvertPrecisionToLinalgPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<RoundLowering, UnscaleLowering>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
} // namespace tessera
