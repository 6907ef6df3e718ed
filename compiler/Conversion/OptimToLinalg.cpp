//===- OptimToLinalg.cpp - optim ops to linalg ----------------------------===//
//
// Each optimizer step becomes one element-wise linalg.generic over the flat
// buffers (one pass over memory). Scalars derived from the hyper-parameters
// (decay factor, step size, sqrt of the bias correction) are computed once
// in f64, outside the loop, as PyTorch does in Python floats.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/Passes.h"
#include "dialects/optim/IR/OptimDialect.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

using namespace mlir;

namespace tessera {
#define GEN_PASS_DEF_CONVERTOPTIMTOLINALG
#include "compiler/Conversion/Passes.h.inc"

namespace {

RankedTensorType ty(Value v) { return cast<RankedTensorType>(v.getType()); }

Value emptyLike(OpBuilder &b, Location l, Value v) {
  return tensor::EmptyOp::create(b, l, ty(v).getShape(), ty(v).getElementType());
}

/// hyper[i] as an f64 scalar.
Value hyperAt(OpBuilder &b, Location l, Value hyper, int64_t i) {
  Value idx = arith::ConstantIndexOp::create(b, l, i);
  Value f = tensor::ExtractOp::create(b, l, hyper, ValueRange{idx});
  return arith::ExtFOp::create(b, l, b.getF64Type(), f);
}

Value f64(OpBuilder &b, Location l, double v) {
  return arith::ConstantOp::create(b, l, b.getF64FloatAttr(v));
}

Value toF32(OpBuilder &b, Location l, Value v) {
  return arith::TruncFOp::create(b, l, b.getF32Type(), v);
}

/// sum(g^2) as an f32 scalar (accumulated in f32, as PyTorch's norm).
Value sumOfSquares(OpBuilder &b, Location l, Value g) {
  MLIRContext *ctx = b.getContext();
  auto scalarT = RankedTensorType::get({}, b.getF32Type());
  Value zero = arith::ConstantOp::create(b, l, b.getF32FloatAttr(0));
  Value empty = tensor::EmptyOp::create(b, l, SmallVector<int64_t>{},
                                        b.getF32Type());
  Value acc = linalg::FillOp::create(b, l, zero, empty).getResult(0);
  Value sum = linalg::GenericOp::create(
                  b, l, TypeRange{scalarT}, ValueRange{g}, ValueRange{acc},
                  SmallVector<AffineMap>{AffineMap::getMultiDimIdentityMap(1, ctx),
                                         AffineMap::get(1, 0, {}, ctx)},
                  SmallVector<utils::IteratorType>{utils::IteratorType::reduction},
                  [](OpBuilder &nb, Location ll, ValueRange a) {
                    Value sq = arith::MulFOp::create(nb, ll, a[0], a[0]);
                    linalg::YieldOp::create(
                        nb, ll, arith::AddFOp::create(nb, ll, a[1], sq).getResult());
                  })
                  .getResult(0);
  return tensor::ExtractOp::create(b, l, sum, ValueRange{});
}

/// A generic over 1-D buffers `ins` producing `numOuts` buffers like them.
SmallVector<Value> flatGeneric(OpBuilder &b, Location l, ValueRange ins,
                               unsigned numOuts,
                               function_ref<SmallVector<Value>(OpBuilder &, Location,
                                                               ValueRange, Value)>
                                   body) {
  MLIRContext *ctx = b.getContext();
  SmallVector<Value> outs;
  SmallVector<Type> types;
  for (unsigned i = 0; i < numOuts; ++i) {
    outs.push_back(emptyLike(b, l, ins[0]));
    types.push_back(ins[0].getType());
  }
  SmallVector<AffineMap> maps(ins.size() + numOuts,
                              AffineMap::getMultiDimIdentityMap(1, ctx));
  auto op = linalg::GenericOp::create(
      b, l, types, ins, outs, maps,
      SmallVector<utils::IteratorType>{utils::IteratorType::parallel},
      [&](OpBuilder &nb, Location ll, ValueRange a) {
        Value index = linalg::IndexOp::create(nb, ll, 0);
        linalg::YieldOp::create(nb, ll, body(nb, ll, a.take_front(ins.size()), index));
      });
  return SmallVector<Value>(op.getResults());
}

/// Element-wise f32 arithmetic inside a generic's body.
struct F32Ops {
  OpBuilder &b;
  Location l;
  Value mul(Value x, Value y) { return arith::MulFOp::create(b, l, x, y); }
  Value add(Value x, Value y) { return arith::AddFOp::create(b, l, x, y); }
};

/// index < decayEnd, inside a generic.
Value decayed(OpBuilder &b, Location l, Value index, int64_t decayEnd) {
  return arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, index,
                               arith::ConstantIndexOp::create(b, l, decayEnd));
}

struct ClipLowering : OpRewritePattern<optim::ClipByGlobalNormOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(optim::ClipByGlobalNormOp op,
                                PatternRewriter &b) const override {
    Location l = op.getLoc();
    Value norm = math::SqrtOp::create(b, l, sumOfSquares(b, l, op.getGrads()));
    // coef = min(1, max_norm / (norm + 1e-6)), in f64 like PyTorch's scalar.
    Value n64 = arith::ExtFOp::create(b, l, b.getF64Type(), norm);
    Value coef = arith::DivFOp::create(
        b, l, f64(b, l, op.getMaxNorm().convertToDouble()),
        arith::AddFOp::create(b, l, n64, f64(b, l, 1e-6)));
    coef = toF32(b, l, arith::MinimumFOp::create(b, l, coef, f64(b, l, 1.0)));
    Value clipped = flatGeneric(b, l, {op.getGrads()}, 1,
                                [&](OpBuilder &nb, Location ll, ValueRange a, Value) {
                                  return SmallVector<Value>{
                                      arith::MulFOp::create(nb, ll, a[0], coef)};
                                })[0];
    Value normT = tensor::FromElementsOp::create(
        b, l, RankedTensorType::get({}, b.getF32Type()), ValueRange{norm});
    b.replaceOp(op, {clipped, normT});
    return success();
  }
};

struct GlobalNormLowering : OpRewritePattern<optim::GlobalNormOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(optim::GlobalNormOp op,
                                PatternRewriter &b) const override {
    Location l = op.getLoc();
    Value norm = math::SqrtOp::create(b, l, sumOfSquares(b, l, op.getGrads()));
    b.replaceOp(op, tensor::FromElementsOp::create(
                        b, l, RankedTensorType::get({}, b.getF32Type()),
                        ValueRange{norm}));
    return success();
  }
};

struct AdamWLowering : OpRewritePattern<optim::AdamWStepOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(optim::AdamWStepOp op,
                                PatternRewriter &b) const override {
    Location l = op.getLoc();
    Value h = op.getHyper();
    Value lr = hyperAt(b, l, h, 0), wd = hyperAt(b, l, h, 4);
    Value b1 = hyperAt(b, l, h, 1), b2 = hyperAt(b, l, h, 2);
    Value eps = toF32(b, l, hyperAt(b, l, h, 3));
    Value bc1 = hyperAt(b, l, h, 5), bc2 = hyperAt(b, l, h, 6);
    Value one = f64(b, l, 1.0);
    Value decay = toF32(b, l, arith::SubFOp::create(
                                  b, l, one, arith::MulFOp::create(b, l, lr, wd)));
    Value stepSize = toF32(b, l, arith::DivFOp::create(b, l, lr, bc1));
    Value sqrtBc2 = toF32(b, l, math::SqrtOp::create(b, l, bc2));
    Value beta1 = toF32(b, l, b1), beta2 = toF32(b, l, b2);
    Value oneMinusB1 = toF32(b, l, arith::SubFOp::create(b, l, one, b1));
    Value oneMinusB2 = toF32(b, l, arith::SubFOp::create(b, l, one, b2));
    int64_t decayEnd = int64_t(op.getDecayEnd());
    auto results = flatGeneric(
        b, l, {op.getParams(), op.getGrads(), op.getExpAvg(), op.getExpAvgSq()}, 3,
        [&](OpBuilder &nb, Location ll, ValueRange a, Value index) {
          F32Ops f{nb, ll};
          Value p = arith::SelectOp::create(nb, ll, decayed(nb, ll, index, decayEnd),
                                            f.mul(a[0], decay), a[0]);
          Value g = a[1];
          Value m = f.add(f.mul(a[2], beta1), f.mul(g, oneMinusB1));
          Value v = f.add(f.mul(a[3], beta2), f.mul(f.mul(g, g), oneMinusB2));
          Value denom = f.add(arith::DivFOp::create(
                                nb, ll, math::SqrtOp::create(nb, ll, v), sqrtBc2),
                            eps);
          Value upd = f.mul(arith::DivFOp::create(nb, ll, m, denom), stepSize);
          return SmallVector<Value>{arith::SubFOp::create(nb, ll, p, upd), m, v};
        });
    b.replaceOp(op, results);
    return success();
  }
};

struct SGDLowering : OpRewritePattern<optim::SGDStepOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(optim::SGDStepOp op,
                                PatternRewriter &b) const override {
    Location l = op.getLoc();
    Value h = op.getHyper();
    Value lr = toF32(b, l, hyperAt(b, l, h, 0));
    Value mom = toF32(b, l, hyperAt(b, l, h, 1));
    Value wd = toF32(b, l, hyperAt(b, l, h, 2));
    int64_t decayEnd = int64_t(op.getDecayEnd());
    bool nesterov = op.getNesterov();
    auto results = flatGeneric(
        b, l, {op.getParams(), op.getGrads(), op.getMomentumBuffer()}, 2,
        [&](OpBuilder &nb, Location ll, ValueRange a, Value index) {
          F32Ops f{nb, ll};
          Value d = arith::SelectOp::create(nb, ll, decayed(nb, ll, index, decayEnd),
                                            f.add(a[1], f.mul(wd, a[0])), a[1]);
          Value buf = f.add(f.mul(a[2], mom), d);
          Value dir = nesterov ? f.add(d, f.mul(mom, buf)) : buf;
          return SmallVector<Value>{arith::SubFOp::create(nb, ll, a[0], f.mul(lr, dir)),
                                    buf};
        });
    b.replaceOp(op, results);
    return success();
  }
};

struct ConvertOptimToLinalgPass
    : impl::ConvertOptimToLinalgBase<ConvertOptimToLinalgPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<ClipLowering, GlobalNormLowering, AdamWLowering, SGDLowering>(
        &getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
} // namespace tessera
