//===- NNGradients.cpp - Vector-Jacobian products of nn ops ---------------===//
//
// Each op's buildVJP builds the gradients of its operands from the gradient
// of its result, with other nn ops. Broadcasting operands get their
// gradient summed back to their own shape ("unbroadcast"). Ops whose
// gradient is not a short composition of nn ops have a dedicated *_grad op
// (relu/gelu/silu, layer/RMS norm, embedding, cross-entropy, slice), lowered
// by convert-nn-to-linalg; attention's gradient is composed from matmul,
// softmax and a causal-mask constant, so it never needs its own kernel.
//
//===----------------------------------------------------------------------===//

#include "dialects/nn/IR/NNDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"

#include <limits>

using namespace mlir;

namespace tessera::nn {
namespace {

RankedTensorType typeOf(Value v) { return cast<RankedTensorType>(v.getType()); }

/// A rank-0 constant of `elem` type.
Value scalar(OpBuilder &b, Location l, double value, Type elem) {
  auto t = RankedTensorType::get({}, elem);
  return arith::ConstantOp::create(
      b, l, DenseElementsAttr::get(t, b.getFloatAttr(elem, value)));
}

/// A constant of `type` filled with `value`.
Value splat(OpBuilder &b, Location l, RankedTensorType type, double value) {
  return arith::ConstantOp::create(
      b, l,
      DenseElementsAttr::get(type, b.getFloatAttr(type.getElementType(), value)));
}

RankedTensorType broadcastType(Value a, Value c) {
  RankedTensorType ta = typeOf(a), tc = typeOf(c);
  int64_t rank = std::max(ta.getRank(), tc.getRank());
  SmallVector<int64_t> shape(rank, 1);
  for (int64_t i = 0; i < rank; ++i) {
    int64_t ia = i - (rank - ta.getRank()), ic = i - (rank - tc.getRank());
    int64_t da = ia >= 0 ? ta.getDimSize(ia) : 1;
    int64_t dc = ic >= 0 ? tc.getDimSize(ic) : 1;
    shape[i] = da == 1 ? dc : da;
  }
  return RankedTensorType::get(shape, ta.getElementType());
}

Value add(OpBuilder &b, Location l, Value x, Value y) {
  return AddOp::create(b, l, broadcastType(x, y), x, y);
}
Value sub(OpBuilder &b, Location l, Value x, Value y) {
  return SubOp::create(b, l, broadcastType(x, y), x, y);
}
Value mul(OpBuilder &b, Location l, Value x, Value y) {
  return MulOp::create(b, l, broadcastType(x, y), x, y);
}
Value div(OpBuilder &b, Location l, Value x, Value y) {
  return DivOp::create(b, l, broadcastType(x, y), x, y);
}
Value scale(OpBuilder &b, Location l, Value x, double s) {
  return mul(b, l, x, scalar(b, l, s, typeOf(x).getElementType()));
}

/// Sums `x` over dimension `dim`, keeping it as size 1 or dropping it.
Value reduceSum(OpBuilder &b, Location l, Value x, int64_t dim, bool keep) {
  RankedTensorType t = typeOf(x);
  SmallVector<int64_t> shape(t.getShape());
  if (keep)
    shape[dim] = 1;
  else
    shape.erase(shape.begin() + dim);
  return ReduceSumOp::create(b, l, RankedTensorType::get(shape, t.getElementType()),
                             x, b.getI64IntegerAttr(dim),
                             keep ? b.getUnitAttr() : UnitAttr());
}

Value reshape(OpBuilder &b, Location l, Value x, ArrayRef<int64_t> shape) {
  if (typeOf(x).getShape() == shape)
    return x;
  return ReshapeOp::create(
      b, l, RankedTensorType::get(shape, typeOf(x).getElementType()), x);
}

/// Swaps the last two dimensions.
Value transposeLast(OpBuilder &b, Location l, Value x) {
  RankedTensorType t = typeOf(x);
  int64_t r = t.getRank();
  SmallVector<int64_t> shape(t.getShape());
  std::swap(shape[r - 1], shape[r - 2]);
  return TransposeOp::create(b, l, RankedTensorType::get(shape, t.getElementType()),
                             x, b.getI64IntegerAttr(r - 2),
                             b.getI64IntegerAttr(r - 1));
}

Value matmul(OpBuilder &b, Location l, Value x, Value y) {
  RankedTensorType tx = typeOf(x), ty = typeOf(y);
  // Batch dims broadcast like element-wise ops; then [M, K] x [K, N].
  SmallVector<int64_t> batch;
  int64_t rx = tx.getRank(), ry = ty.getRank();
  int64_t rb = std::max(rx, ry) - 2;
  for (int64_t i = 0; i < rb; ++i) {
    int64_t ix = i - (rb - (rx - 2)), iy = i - (rb - (ry - 2));
    int64_t dx = ix >= 0 ? tx.getDimSize(ix) : 1;
    int64_t dy = iy >= 0 ? ty.getDimSize(iy) : 1;
    batch.push_back(dx == 1 ? dy : dx);
  }
  batch.push_back(tx.getDimSize(rx - 2));
  batch.push_back(ty.getDimSize(ry - 1));
  return MatmulOp::create(b, l, RankedTensorType::get(batch, tx.getElementType()),
                          x, y);
}

/// Sums a gradient of a broadcast result back to the shape of `target`.
Value unbroadcast(OpBuilder &b, Location l, Value g, RankedTensorType target) {
  while (typeOf(g).getRank() > target.getRank())
    g = reduceSum(b, l, g, 0, /*keep=*/false);
  for (int64_t i = 0; i < target.getRank(); ++i)
    if (target.getDimSize(i) == 1 && typeOf(g).getDimSize(i) != 1)
      g = reduceSum(b, l, g, i, /*keep=*/true);
  return g;
}

/// The product of all but the last `keep` dimensions, then those.
SmallVector<int64_t> flattenLeading(RankedTensorType t, int64_t keep) {
  int64_t n = 1;
  for (int64_t i = 0; i < t.getRank() - keep; ++i)
    n *= t.getDimSize(i);
  SmallVector<int64_t> shape{n};
  for (int64_t i = t.getRank() - keep; i < t.getRank(); ++i)
    shape.push_back(t.getDimSize(i));
  return shape;
}

} // namespace

//===----------------------------------------------------------------------===//
// Element-wise
//===----------------------------------------------------------------------===//

LogicalResult ReluOp::buildVJP(OpBuilder &b, ArrayRef<Value> g,
                               SmallVectorImpl<Value> &out) {
  out.push_back(ReluGradOp::create(b, getLoc(), g[0].getType(), g[0], getInput()));
  return success();
}

LogicalResult GeluOp::buildVJP(OpBuilder &b, ArrayRef<Value> g,
                               SmallVectorImpl<Value> &out) {
  out.push_back(GeluGradOp::create(b, getLoc(), g[0].getType(), g[0], getInput()));
  return success();
}

LogicalResult SiluOp::buildVJP(OpBuilder &b, ArrayRef<Value> g,
                               SmallVectorImpl<Value> &out) {
  out.push_back(SiluGradOp::create(b, getLoc(), g[0].getType(), g[0], getInput()));
  return success();
}

LogicalResult AddOp::buildVJP(OpBuilder &b, ArrayRef<Value> g,
                              SmallVectorImpl<Value> &out) {
  out.push_back(unbroadcast(b, getLoc(), g[0], typeOf(getLhs())));
  out.push_back(unbroadcast(b, getLoc(), g[0], typeOf(getRhs())));
  return success();
}

LogicalResult SubOp::buildVJP(OpBuilder &b, ArrayRef<Value> g,
                              SmallVectorImpl<Value> &out) {
  Location l = getLoc();
  out.push_back(unbroadcast(b, l, g[0], typeOf(getLhs())));
  out.push_back(unbroadcast(b, l, scale(b, l, g[0], -1.0), typeOf(getRhs())));
  return success();
}

LogicalResult MulOp::buildVJP(OpBuilder &b, ArrayRef<Value> g,
                              SmallVectorImpl<Value> &out) {
  Location l = getLoc();
  out.push_back(unbroadcast(b, l, mul(b, l, g[0], getRhs()), typeOf(getLhs())));
  out.push_back(unbroadcast(b, l, mul(b, l, g[0], getLhs()), typeOf(getRhs())));
  return success();
}

LogicalResult DivOp::buildVJP(OpBuilder &b, ArrayRef<Value> g,
                              SmallVectorImpl<Value> &out) {
  // d(a/c)/da = 1/c, d(a/c)/dc = -(a/c)/c.
  Location l = getLoc();
  out.push_back(unbroadcast(b, l, div(b, l, g[0], getRhs()), typeOf(getLhs())));
  Value dc = scale(b, l, div(b, l, mul(b, l, g[0], getResult()), getRhs()), -1.0);
  out.push_back(unbroadcast(b, l, dc, typeOf(getRhs())));
  return success();
}

LogicalResult SoftmaxOp::buildVJP(OpBuilder &b, ArrayRef<Value> g,
                                  SmallVectorImpl<Value> &out) {
  // dx = y * (g - sum(g * y, dim)).
  Location l = getLoc();
  int64_t rank = typeOf(getInput()).getRank();
  int64_t dim = int64_t(getDim());
  dim = dim < 0 ? dim + rank : dim;
  Value y = getResult();
  Value dot = reduceSum(b, l, mul(b, l, g[0], y), dim, /*keep=*/true);
  out.push_back(mul(b, l, y, sub(b, l, g[0], dot)));
  return success();
}

//===----------------------------------------------------------------------===//
// Linear algebra
//===----------------------------------------------------------------------===//

LogicalResult LinearOp::buildVJP(OpBuilder &b, ArrayRef<Value> g,
                                 SmallVectorImpl<Value> &out) {
  // y = x W^T + b:  dx = g W,  dW = g^T x (over all rows),  db = sum(g).
  Location l = getLoc();
  Value x = getInput(), w = getWeight();
  out.push_back(matmul(b, l, g[0], w));
  Value g2 = reshape(b, l, g[0], flattenLeading(typeOf(g[0]), 1));
  Value x2 = reshape(b, l, x, flattenLeading(typeOf(x), 1));
  out.push_back(matmul(b, l, transposeLast(b, l, g2), x2));
  if (getBias())
    out.push_back(reduceSum(b, l, g2, 0, /*keep=*/false));
  return success();
}

LogicalResult MatmulOp::buildVJP(OpBuilder &b, ArrayRef<Value> g,
                                 SmallVectorImpl<Value> &out) {
  // c = a b:  da = g b^T,  db = a^T g (summed over broadcast batch dims).
  Location l = getLoc();
  Value a = getLhs(), c = getRhs();
  RankedTensorType ta = typeOf(a), tc = typeOf(c);
  out.push_back(unbroadcast(b, l, matmul(b, l, g[0], transposeLast(b, l, c)), ta));
  if (tc.getRank() == 2 && ta.getRank() > 2) {
    // One shared right operand: a single GEMM over all rows.
    Value a2 = reshape(b, l, a, flattenLeading(ta, 1));
    Value g2 = reshape(b, l, g[0], flattenLeading(typeOf(g[0]), 1));
    out.push_back(matmul(b, l, transposeLast(b, l, a2), g2));
  } else {
    out.push_back(unbroadcast(b, l, matmul(b, l, transposeLast(b, l, a), g[0]), tc));
  }
  return success();
}

//===----------------------------------------------------------------------===//
// Normalization, embedding, attention, loss
//===----------------------------------------------------------------------===//

LogicalResult LayerNormOp::buildVJP(OpBuilder &b, ArrayRef<Value> g,
                                    SmallVectorImpl<Value> &out) {
  auto grads = LayerNormGradOp::create(
      b, getLoc(), getInput().getType(), getWeight().getType(),
      getBias().getType(), g[0], getInput(), getWeight(), getEpsAttr());
  out.append({grads.getInputGrad(), grads.getWeightGrad(), grads.getBiasGrad()});
  return success();
}

LogicalResult RMSNormOp::buildVJP(OpBuilder &b, ArrayRef<Value> g,
                                  SmallVectorImpl<Value> &out) {
  auto grads = RMSNormGradOp::create(b, getLoc(), getInput().getType(),
                                     getWeight().getType(), g[0], getInput(),
                                     getWeight(), getEpsAttr());
  out.append({grads.getInputGrad(), grads.getWeightGrad()});
  return success();
}

LogicalResult EmbeddingOp::buildVJP(OpBuilder &b, ArrayRef<Value> g,
                                    SmallVectorImpl<Value> &out) {
  out.push_back(EmbeddingGradOp::create(b, getLoc(), getWeight().getType(), g[0],
                                        getIndices()));
  out.push_back(Value()); // indices
  return success();
}

LogicalResult AttentionOp::buildVJP(OpBuilder &b, ArrayRef<Value> g,
                                    SmallVectorImpl<Value> &out) {
  auto grads = AttentionGradOp::create(
      b, getLoc(), getQuery().getType(), getKey().getType(),
      getValue().getType(), g[0], getQuery(), getKey(), getValue(),
      getResult(), getCausalAttr(), getScaleAttr());
  out.append({grads.getQueryGrad(), grads.getKeyGrad(), grads.getValueGrad()});
  return success();
}

/// `scale`, or 1/sqrt(head dimension) of the query `q`.
static double scaleOrDefault(std::optional<APFloat> scale, Value q) {
  if (scale)
    return scale->convertToDouble();
  RankedTensorType tq = typeOf(q);
  return 1.0 / std::sqrt(double(tq.getDimSize(tq.getRank() - 1)));
}

double AttentionOp::getScaleOrDefault() {
  return scaleOrDefault(getScale(), getQuery());
}

double AttentionGradOp::getScaleOrDefault() {
  return scaleOrDefault(getScale(), getQuery());
}

SmallVector<Value, 3> AttentionGradOp::decompose(OpBuilder &b) {
  // Recompute p = softmax(q k^T * scale + mask), then
  //   dv = p^T g,  dp = g v^T,  ds = p * (dp - sum(dp * p)) * scale,
  //   dq = ds k,   dk = ds^T q.
  Location l = getLoc();
  Value q = getQuery(), k = getKey(), v = getValue(), g = getGrad();
  RankedTensorType tq = typeOf(q), tk = typeOf(k);
  int64_t r = tq.getRank();
  int64_t t = tq.getDimSize(r - 2), s = tk.getDimSize(r - 2);
  double sc = getScaleOrDefault();
  Value scores = scale(b, l, matmul(b, l, q, transposeLast(b, l, k)), sc);
  if (getCausal()) {
    // -inf where the key index exceeds the query index (as the lowering).
    Type elem = tq.getElementType();
    auto maskType = RankedTensorType::get({t, s}, elem);
    SmallVector<Attribute> values;
    values.reserve(t * s);
    for (int64_t i = 0; i < t; ++i)
      for (int64_t j = 0; j < s; ++j)
        values.push_back(b.getFloatAttr(
            elem, j > i ? -std::numeric_limits<double>::infinity() : 0.0));
    Value mask = arith::ConstantOp::create(
        b, l, DenseElementsAttr::get(maskType, values));
    scores = add(b, l, scores, mask);
  }
  Value p = SoftmaxOp::create(b, l, scores.getType(), scores,
                              b.getI64IntegerAttr(-1));
  Value dv = matmul(b, l, transposeLast(b, l, p), g);
  Value dp = matmul(b, l, g, transposeLast(b, l, v));
  Value dot = reduceSum(b, l, mul(b, l, dp, p), r - 1, /*keep=*/true);
  Value ds = scale(b, l, mul(b, l, p, sub(b, l, dp, dot)), sc);
  return {matmul(b, l, ds, k), matmul(b, l, transposeLast(b, l, ds), q), dv};
}

LogicalResult CrossEntropyOp::buildVJP(OpBuilder &b, ArrayRef<Value> g,
                                       SmallVectorImpl<Value> &out) {
  out.push_back(CrossEntropyGradOp::create(b, getLoc(), getLogits().getType(),
                                           g[0], getLogits(), getTargets()));
  out.push_back(Value()); // targets
  return success();
}

//===----------------------------------------------------------------------===//
// Shape manipulation and reductions
//===----------------------------------------------------------------------===//

LogicalResult ReshapeOp::buildVJP(OpBuilder &b, ArrayRef<Value> g,
                                  SmallVectorImpl<Value> &out) {
  out.push_back(reshape(b, getLoc(), g[0], typeOf(getInput()).getShape()));
  return success();
}

LogicalResult TransposeOp::buildVJP(OpBuilder &b, ArrayRef<Value> g,
                                    SmallVectorImpl<Value> &out) {
  // The gradient of a transposed matrix that a matmul gave, f((x y))^T for
  // element-wise f of one operand (mixed precision's rounding), as
  // f(y^T x^T): the matmul writes the transposed layout itself, so no
  // kernel transposes it afterwards, and what adds to it (a tied
  // embedding's own gradient) reads it in its own layout. What the old
  // product fed is left to canonicalization once nothing reads it.
  SmallVector<Operation *> elementwise;
  Value v = g[0];
  Operation *def = v.getDefiningOp();
  while (def && def->hasTrait<OpTrait::Elementwise>() &&
         def->getNumOperands() == 1 && def->getNumResults() == 1 &&
         def->getOperand(0).getType() == v.getType()) {
    elementwise.push_back(def);
    v = def->getOperand(0);
    def = v.getDefiningOp();
  }
  auto product = dyn_cast_or_null<MatmulOp>(def);
  if (product && typeOf(v).getRank() == 2 &&
      typeOf(product.getLhs()).getRank() == 2 &&
      typeOf(product.getRhs()).getRank() == 2) {
    Location l = getLoc();
    Value r = matmul(b, l, transposeLast(b, l, product.getRhs()),
                     transposeLast(b, l, product.getLhs()));
    for (Operation *op : llvm::reverse(elementwise)) {
      Operation *copy = b.clone(*op);
      copy->setOperand(0, r);
      copy->getResult(0).setType(r.getType());
      r = copy->getResult(0);
    }
    out.push_back(r);
    return success();
  }
  out.push_back(TransposeOp::create(b, getLoc(), getInput().getType(), g[0],
                                    getDim0Attr(), getDim1Attr()));
  return success();
}

/// The gradient of a sum over `dim` (all dims when absent), spread back.
static Value spreadSum(OpBuilder &b, Location l, Value g, Value input,
                       std::optional<uint64_t> dimAttr, bool keepdim) {
  RankedTensorType t = typeOf(input);
  if (dimAttr && !keepdim) {
    int64_t dim = int64_t(*dimAttr);
    dim = dim < 0 ? dim + t.getRank() : dim;
    SmallVector<int64_t> shape(t.getShape());
    shape[dim] = 1;
    g = reshape(b, l, g, shape);
  }
  return add(b, l, splat(b, l, t, 0.0), g);
}

LogicalResult ReduceSumOp::buildVJP(OpBuilder &b, ArrayRef<Value> g,
                                    SmallVectorImpl<Value> &out) {
  out.push_back(spreadSum(b, getLoc(), g[0], getInput(), getDim(), getKeepdim()));
  return success();
}

LogicalResult ReduceMeanOp::buildVJP(OpBuilder &b, ArrayRef<Value> g,
                                     SmallVectorImpl<Value> &out) {
  RankedTensorType t = typeOf(getInput());
  int64_t n = t.getNumElements() / typeOf(getResult()).getNumElements();
  Value spread = spreadSum(b, getLoc(), g[0], getInput(), getDim(), getKeepdim());
  out.push_back(scale(b, getLoc(), spread, 1.0 / double(n)));
  return success();
}

LogicalResult ReduceMaxOp::buildVJP(OpBuilder &, ArrayRef<Value>,
                                    SmallVectorImpl<Value> &) {
  return emitOpError("has no gradient yet (reduce_max is not differentiable "
                     "in this version)");
}

LogicalResult ConcatOp::buildVJP(OpBuilder &b, ArrayRef<Value> g,
                                 SmallVectorImpl<Value> &out) {
  RankedTensorType t = typeOf(getResult());
  int64_t dim = int64_t(getDim());
  dim = dim < 0 ? dim + t.getRank() : dim;
  int64_t offset = 0;
  for (Value in : getInputs()) {
    RankedTensorType ti = typeOf(in);
    SmallVector<int64_t> start(t.getRank(), 0), limit(t.getShape()),
        stride(t.getRank(), 1);
    start[dim] = offset;
    limit[dim] = offset + ti.getDimSize(dim);
    offset = limit[dim];
    out.push_back(SliceOp::create(b, getLoc(), ti, g[0],
                                  b.getDenseI64ArrayAttr(start),
                                  b.getDenseI64ArrayAttr(limit),
                                  b.getDenseI64ArrayAttr(stride)));
  }
  return success();
}

LogicalResult SliceOp::buildVJP(OpBuilder &b, ArrayRef<Value> g,
                                SmallVectorImpl<Value> &out) {
  out.push_back(SliceGradOp::create(b, getLoc(), getInput().getType(), g[0],
                                    getStartAttr(), getLimitAttr(),
                                    getStrideAttr()));
  return success();
}

} // namespace tessera::nn
