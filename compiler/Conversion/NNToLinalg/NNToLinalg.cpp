//===- NNToLinalg.cpp - nn ops to linalg/tensor/arith/math ----------------===//
//
// Static shapes only for now: every result is allocated with tensor.empty.
// Contractions are plain linalg.generic ops here; tiling and vectorization
// (or a BLAS call) belong to the CPU pipeline that consumes this output.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/Passes.h"
#include "dialects/nn/IR/NNDialect.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/AffineMap.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace tessera {
#define GEN_PASS_DEF_CONVERTNNTOLINALG
#include "compiler/Conversion/Passes.h.inc"
} // namespace tessera

using namespace mlir;
using namespace tessera;

namespace {

RankedTensorType ty(Value v) { return cast<RankedTensorType>(v.getType()); }

/// The map from an `outRank`-dimensional iteration space to an operand of
/// shape `shape`, aligned from the right; size-1 dimensions broadcast.
AffineMap broadcastMap(MLIRContext *ctx, ArrayRef<int64_t> shape,
                       ArrayRef<int64_t> outShape, unsigned numDims) {
  SmallVector<AffineExpr> exprs;
  size_t off = outShape.size() - shape.size();
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 1 && outShape[off + i] != 1)
      exprs.push_back(getAffineConstantExpr(0, ctx));
    else
      exprs.push_back(getAffineDimExpr(off + i, ctx));
  }
  return AffineMap::get(numDims, 0, exprs, ctx);
}

Value emptyLike(PatternRewriter &b, Location loc, RankedTensorType t) {
  return tensor::EmptyOp::create(b, loc, t.getShape(), t.getElementType());
}

Value zeroFilled(PatternRewriter &b, Location loc, RankedTensorType t) {
  Value zero = arith::ConstantOp::create(b, loc, b.getZeroAttr(t.getElementType()));
  return linalg::FillOp::create(b, loc, zero, emptyLike(b, loc, t)).getResult(0);
}

Value floatConst(OpBuilder &b, Location loc, Type t, double v) {
  return arith::ConstantOp::create(b, loc, b.getFloatAttr(t, v));
}

/// An element-wise generic over `inputs` (broadcast to `out`).
Value elementwise(PatternRewriter &b, Location loc, RankedTensorType out,
                  ValueRange inputs,
                  function_ref<Value(OpBuilder &, Location, ValueRange)> body) {
  MLIRContext *ctx = b.getContext();
  unsigned n = out.getRank();
  SmallVector<AffineMap> maps;
  for (Value in : inputs)
    maps.push_back(broadcastMap(ctx, ty(in).getShape(), out.getShape(), n));
  maps.push_back(AffineMap::getMultiDimIdentityMap(n, ctx));
  SmallVector<utils::IteratorType> iters(n, utils::IteratorType::parallel);
  return linalg::GenericOp::create(
             b, loc, TypeRange{out}, inputs, ValueRange{emptyLike(b, loc, out)},
             maps, iters,
             [&](OpBuilder &nb, Location l, ValueRange args) {
               linalg::YieldOp::create(nb, l, body(nb, l, args));
             })
      .getResult(0);
}

bool isStatic(Operation *op) {
  auto staticT = [](Type t) {
    auto r = dyn_cast<RankedTensorType>(t);
    return r && r.hasStaticShape();
  };
  return llvm::all_of(op->getOperandTypes(), staticT) &&
         llvm::all_of(op->getResultTypes(), staticT);
}

template <typename OpT>
struct StaticPattern : OpRewritePattern<OpT> {
  using OpRewritePattern<OpT>::OpRewritePattern;
  LogicalResult matchAndRewrite(OpT op, PatternRewriter &b) const final {
    if (!isStatic(op))
      return b.notifyMatchFailure(op, "dynamic shapes");
    Value v = lower(op, b);
    if (!v)
      return failure();
    b.replaceOp(op, v);
    return success();
  }
  virtual Value lower(OpT op, PatternRewriter &b) const = 0;
};

template <typename OpT>
struct BinaryLowering : StaticPattern<OpT> {
  using StaticPattern<OpT>::StaticPattern;
  Value lower(OpT op, PatternRewriter &b) const override {
    bool isFloat = isa<FloatType>(ty(op.getLhs()).getElementType());
    return elementwise(
        b, op.getLoc(), ty(op.getResult()), {op.getLhs(), op.getRhs()},
        [&](OpBuilder &nb, Location l, ValueRange a) -> Value {
          if (isFloat) {
            if constexpr (std::is_same_v<OpT, nn::AddOp>)
              return arith::AddFOp::create(nb, l, a[0], a[1]);
            if constexpr (std::is_same_v<OpT, nn::SubOp>)
              return arith::SubFOp::create(nb, l, a[0], a[1]);
            if constexpr (std::is_same_v<OpT, nn::MulOp>)
              return arith::MulFOp::create(nb, l, a[0], a[1]);
            return arith::DivFOp::create(nb, l, a[0], a[1]);
          }
          if constexpr (std::is_same_v<OpT, nn::AddOp>)
            return arith::AddIOp::create(nb, l, a[0], a[1]);
          if constexpr (std::is_same_v<OpT, nn::SubOp>)
            return arith::SubIOp::create(nb, l, a[0], a[1]);
          if constexpr (std::is_same_v<OpT, nn::MulOp>)
            return arith::MulIOp::create(nb, l, a[0], a[1]);
          return arith::DivSIOp::create(nb, l, a[0], a[1]);
        });
  }
};

struct ReluLowering : StaticPattern<nn::ReluOp> {
  using StaticPattern::StaticPattern;
  Value lower(nn::ReluOp op, PatternRewriter &b) const override {
    return elementwise(b, op.getLoc(), ty(op.getResult()), {op.getInput()},
                       [](OpBuilder &nb, Location l, ValueRange a) -> Value {
                         Value z = floatConst(nb, l, a[0].getType(), 0.0);
                         return arith::MaximumFOp::create(nb, l, a[0], z);
                       });
  }
};

struct GeluLowering : StaticPattern<nn::GeluOp> {
  using StaticPattern::StaticPattern;
  Value lower(nn::GeluOp op, PatternRewriter &b) const override {
    // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    return elementwise(
        b, op.getLoc(), ty(op.getResult()), {op.getInput()},
        [](OpBuilder &nb, Location l, ValueRange a) -> Value {
          Type t = a[0].getType();
          Value x = a[0];
          Value x3 = arith::MulFOp::create(
              nb, l, x, arith::MulFOp::create(nb, l, x, x));
          Value inner = arith::AddFOp::create(
              nb, l, x,
              arith::MulFOp::create(nb, l, floatConst(nb, l, t, 0.044715), x3));
          Value th = math::TanhOp::create(
              nb, l,
              arith::MulFOp::create(
                  nb, l, floatConst(nb, l, t, 0.7978845608028654), inner));
          Value onePlus = arith::AddFOp::create(nb, l, floatConst(nb, l, t, 1.0), th);
          return arith::MulFOp::create(
              nb, l, arith::MulFOp::create(nb, l, floatConst(nb, l, t, 0.5), x),
              onePlus);
        });
  }
};

struct SiluLowering : StaticPattern<nn::SiluOp> {
  using StaticPattern::StaticPattern;
  Value lower(nn::SiluOp op, PatternRewriter &b) const override {
    // x / (1 + exp(-x))
    return elementwise(b, op.getLoc(), ty(op.getResult()), {op.getInput()},
                       [](OpBuilder &nb, Location l, ValueRange a) -> Value {
                         Type t = a[0].getType();
                         Value e = math::ExpOp::create(
                             nb, l, arith::NegFOp::create(nb, l, a[0]));
                         Value d = arith::AddFOp::create(
                             nb, l, floatConst(nb, l, t, 1.0), e);
                         return arith::DivFOp::create(nb, l, a[0], d);
                       });
  }
};

/// out[b..., m, n] += a[b..., m, k] * w[..., k/n]: shared by linear and
/// matmul. `lhsMap`/`rhsMap` select the operand indices over
/// (out dims..., k).
Value contraction(PatternRewriter &b, Location loc, RankedTensorType out,
                  Value lhs, Value rhs, AffineMap lhsMap, AffineMap rhsMap) {
  MLIRContext *ctx = b.getContext();
  unsigned n = out.getRank() + 1;
  SmallVector<AffineExpr> outExprs;
  for (unsigned i = 0; i + 1 < n; ++i)
    outExprs.push_back(getAffineDimExpr(i, ctx));
  SmallVector<utils::IteratorType> iters(n - 1, utils::IteratorType::parallel);
  iters.push_back(utils::IteratorType::reduction);
  bool isFloat = isa<FloatType>(out.getElementType());
  return linalg::GenericOp::create(
             b, loc, TypeRange{out}, ValueRange{lhs, rhs},
             ValueRange{zeroFilled(b, loc, out)},
             SmallVector<AffineMap>{lhsMap, rhsMap,
                                    AffineMap::get(n, 0, outExprs, ctx)},
             iters,
             [&](OpBuilder &nb, Location l, ValueRange a) {
               Value r = isFloat ? Value(arith::AddFOp::create(
                                       nb, l, a[2],
                                       arith::MulFOp::create(nb, l, a[0], a[1])))
                                 : Value(arith::AddIOp::create(
                                       nb, l, a[2],
                                       arith::MulIOp::create(nb, l, a[0], a[1])));
               linalg::YieldOp::create(nb, l, r);
             })
      .getResult(0);
}

struct LinearLowering : StaticPattern<nn::LinearOp> {
  using StaticPattern::StaticPattern;
  Value lower(nn::LinearOp op, PatternRewriter &b) const override {
    MLIRContext *ctx = b.getContext();
    RankedTensorType out = ty(op.getResult());
    unsigned r = out.getRank(), n = r + 1;
    AffineExpr k = getAffineDimExpr(r, ctx);
    SmallVector<AffineExpr> xExprs;
    for (unsigned i = 0; i + 1 < r; ++i)
      xExprs.push_back(getAffineDimExpr(i, ctx));
    xExprs.push_back(k);
    AffineMap xMap = AffineMap::get(n, 0, xExprs, ctx);
    AffineMap wMap = AffineMap::get(n, 0, {getAffineDimExpr(r - 1, ctx), k}, ctx);
    Value y = contraction(b, op.getLoc(), out, op.getInput(), op.getWeight(),
                          xMap, wMap);
    if (Value bias = op.getBias())
      y = elementwise(b, op.getLoc(), out, {y, bias},
                      [](OpBuilder &nb, Location l, ValueRange a) -> Value {
                        return arith::AddFOp::create(nb, l, a[0], a[1]);
                      });
    return y;
  }
};

struct MatmulLowering : StaticPattern<nn::MatmulOp> {
  using StaticPattern::StaticPattern;
  Value lower(nn::MatmulOp op, PatternRewriter &b) const override {
    MLIRContext *ctx = b.getContext();
    RankedTensorType out = ty(op.getResult());
    unsigned r = out.getRank(), n = r + 1;
    AffineExpr k = getAffineDimExpr(r, ctx);
    auto operandMap = [&](RankedTensorType t, bool isLhs) {
      // Batch dimensions broadcast like element-wise operands.
      ArrayRef<int64_t> batch = t.getShape().drop_back(2);
      ArrayRef<int64_t> outBatch = out.getShape().drop_back(2);
      SmallVector<AffineExpr> exprs;
      size_t off = outBatch.size() - batch.size();
      for (size_t i = 0; i < batch.size(); ++i)
        exprs.push_back(batch[i] == 1 && outBatch[off + i] != 1
                            ? getAffineConstantExpr(0, ctx)
                            : getAffineDimExpr(off + i, ctx));
      if (isLhs) {
        exprs.push_back(getAffineDimExpr(r - 2, ctx));
        exprs.push_back(k);
      } else {
        exprs.push_back(k);
        exprs.push_back(getAffineDimExpr(r - 1, ctx));
      }
      return AffineMap::get(n, 0, exprs, ctx);
    };
    return contraction(b, op.getLoc(), out, op.getLhs(), op.getRhs(),
                       operandMap(ty(op.getLhs()), true),
                       operandMap(ty(op.getRhs()), false));
  }
};

struct TransposeLowering : StaticPattern<nn::TransposeOp> {
  using StaticPattern::StaticPattern;
  Value lower(nn::TransposeOp op, PatternRewriter &b) const override {
    RankedTensorType out = ty(op.getResult());
    int64_t r = out.getRank();
    auto norm = [&](int64_t d) { return d < 0 ? d + r : d; };
    SmallVector<int64_t> perm;
    for (int64_t i = 0; i < r; ++i)
      perm.push_back(i);
    std::swap(perm[norm(op.getDim0())], perm[norm(op.getDim1())]);
    return linalg::TransposeOp::create(b, op.getLoc(), op.getInput(),
                                       emptyLike(b, op.getLoc(), out), perm)
        .getResult()[0];
  }
};

struct ReshapeLowering : StaticPattern<nn::ReshapeOp> {
  using StaticPattern::StaticPattern;
  Value lower(nn::ReshapeOp op, PatternRewriter &b) const override {
    RankedTensorType out = ty(op.getResult());
    auto shapeType =
        RankedTensorType::get({out.getRank()}, b.getIndexType());
    SmallVector<APInt> dims;
    for (int64_t d : out.getShape())
      dims.push_back(APInt(64, d));
    Value shape = arith::ConstantOp::create(
        b, op.getLoc(), DenseElementsAttr::get(shapeType, dims));
    return tensor::ReshapeOp::create(b, op.getLoc(), out, op.getInput(), shape);
  }
};

struct ConvertNNToLinalgPass
    : tessera::impl::ConvertNNToLinalgBase<ConvertNNToLinalgPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<BinaryLowering<nn::AddOp>, BinaryLowering<nn::SubOp>,
                 BinaryLowering<nn::MulOp>, BinaryLowering<nn::DivOp>,
                 ReluLowering, GeluLowering, SiluLowering, LinearLowering,
                 MatmulLowering, TransposeLowering, ReshapeLowering>(
        &getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns)))) {
      signalPassFailure();
      return;
    }
    // Whatever is left has no lowering yet: say which op and why.
    WalkResult r = getOperation().walk([&](Operation *op) {
      if (!isa<nn::NNDialect>(op->getDialect()))
        return WalkResult::advance();
      op->emitOpError() << (isStatic(op) ? "has no lowering to linalg yet"
                                         : "with dynamic shapes cannot be "
                                           "lowered yet");
      return WalkResult::interrupt();
    });
    if (r.wasInterrupted())
      signalPassFailure();
  }
};

} // namespace
