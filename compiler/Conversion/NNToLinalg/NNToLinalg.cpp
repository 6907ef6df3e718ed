//===- NNToLinalg.cpp - nn ops to linalg/tensor/arith/math ----------------===//
//
// Static shapes only for now: every result is allocated with tensor.empty.
// Contractions are plain linalg.generic ops here; tiling and vectorization
// (or a BLAS call) belong to the CPU pipeline that consumes this output.
// Composite ops (softmax, norms, attention, cross-entropy) are spelled out
// with the small helpers below so each numerical recipe is written once.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/Passes.h"
#include "compiler/Conversion/NNToLinalg/FlashAttention.h"
#include "compiler/Conversion/NNToLinalg/RowKernels.h"
#include "dialects/nn/IR/NNDialect.h"
#include "dialects/precision/IR/PrecisionDialect.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Utils/ReshapeOpsUtils.h"
#include "mlir/IR/AffineMap.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <cmath>
#include <limits>

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


enum class ReduceKind { Sum, Max };

using ElemFn = function_ref<Value(OpBuilder &, Location, ValueRange)>;

Value splitLeadingSum(PatternRewriter &b, Location loc, RankedTensorType full,
                      ValueRange inputs, ArrayRef<int64_t> dims, ElemFn value);

/// Reduces `value(inputs...)` over `dims` of the iteration space `full`,
/// keeping reduced dimensions as size 1 (so results broadcast back). Inputs
/// broadcast against `full` like element-wise operands, so a single pass can
/// combine e.g. x with its mean.
Value reduceKeepOf(PatternRewriter &b, Location loc, RankedTensorType full,
                   ValueRange inputs, ArrayRef<int64_t> dims, ReduceKind kind,
                   ElemFn value) {
  if (kind == ReduceKind::Sum)
    if (Value split = splitLeadingSum(b, loc, full, inputs, dims, value))
      return split;
  MLIRContext *ctx = b.getContext();
  unsigned n = full.getRank();
  SmallVector<int64_t> shape(full.getShape());
  SmallVector<AffineExpr> outExprs;
  SmallVector<utils::IteratorType> iters;
  for (unsigned i = 0; i < n; ++i) {
    bool reduced = llvm::is_contained(dims, int64_t(i));
    if (reduced)
      shape[i] = 1;
    outExprs.push_back(reduced ? getAffineConstantExpr(0, ctx)
                               : getAffineDimExpr(i, ctx));
    iters.push_back(reduced ? utils::IteratorType::reduction
                            : utils::IteratorType::parallel);
  }
  auto outType = RankedTensorType::get(shape, full.getElementType());
  Type et = full.getElementType();
  Value init = kind == ReduceKind::Sum
                   ? floatConst(b, loc, et, 0.0)
                   : floatConst(b, loc, et,
                                -std::numeric_limits<double>::infinity());
  Value acc = linalg::FillOp::create(b, loc, init, emptyLike(b, loc, outType))
                  .getResult(0);
  SmallVector<AffineMap> maps;
  for (Value in : inputs)
    maps.push_back(broadcastMap(ctx, ty(in).getShape(), full.getShape(), n));
  maps.push_back(AffineMap::get(n, 0, outExprs, ctx));
  return linalg::GenericOp::create(
             b, loc, TypeRange{outType}, inputs, ValueRange{acc}, maps, iters,
             [&](OpBuilder &nb, Location l, ValueRange a) {
               Value v = value(nb, l, a.drop_back());
               Value r = kind == ReduceKind::Sum
                             ? Value(arith::AddFOp::create(nb, l, a.back(), v))
                             : Value(arith::MaximumFOp::create(nb, l, a.back(), v));
               linalg::YieldOp::create(nb, l, r);
             })
      .getResult(0);
}

/// A sum over the leading dimensions [0, k) of `full` (a bias or norm
/// weight gradient: rows summed per column) of R >= 4096 rows, as P partial
/// sums of Q = R / P consecutive rows each, P the divisor of R nearest
/// sqrt(R), then a sum of the partials. Summed in one sequence per column,
/// the rows left a GPU with one thread per column (768 for GPT-2's
/// d = 768) looping over every row; split, P times as many threads loop
/// over Q rows, and in f32 the error grows with Q + P instead of R.
/// Inputs that have the leading dimensions are reshaped to [P, Q, ...];
/// inputs without them broadcast. Returns null (no split) otherwise.
Value splitLeadingSum(PatternRewriter &b, Location loc, RankedTensorType full,
                      ValueRange inputs, ArrayRef<int64_t> dims, ElemFn value) {
  int64_t k = dims.size(), n = full.getRank();
  if (k == 0 || k >= n ||
      !llvm::equal(dims, llvm::seq<int64_t>(0, k)))
    return {};
  int64_t rows = 1;
  for (int64_t d = 0; d < k; ++d)
    rows *= full.getDimSize(d);
  int64_t parts = rows >= 4096 ? divisorNearSqrt(rows) : 0;
  if (!parts)
    return {};
  int64_t perPart = rows / parts;

  MLIRContext *ctx = b.getContext();
  SmallVector<int64_t> splitShape = {parts, perPart};
  llvm::append_range(splitShape, full.getShape().drop_front(k));
  SmallVector<Value> split;
  for (Value in : inputs) {
    RankedTensorType t = ty(in);
    int64_t lead = t.getRank() - (n - k); // its dims among [0, k)
    if (lead <= 0) {
      split.push_back(in); // broadcast over the rows
      continue;
    }
    if (lead != k || t.getShape().take_front(k) != full.getShape().take_front(k))
      return {};
    // [r0, .., rk-1, rest] -> [R, rest] -> [P, Q, rest].
    Value x = in;
    if (k > 1) {
      SmallVector<ReassociationIndices> collapse = {
          llvm::to_vector(llvm::seq<int64_t>(0, k))};
      for (int64_t d = k; d < n; ++d)
        collapse.push_back({d});
      x = tensor::CollapseShapeOp::create(b, loc, x, collapse);
    }
    SmallVector<ReassociationIndices> expand = {{0, 1}};
    for (int64_t d = k; d < n; ++d)
      expand.push_back({d - k + 2});
    SmallVector<int64_t> shape = {parts, perPart};
    llvm::append_range(shape, t.getShape().drop_front(k));
    split.push_back(tensor::ExpandShapeOp::create(
        b, loc, RankedTensorType::get(shape, t.getElementType()), x, expand));
  }

  // partial[p, rest] = sum_q value(inputs[p, q, rest]).
  unsigned m = splitShape.size();
  SmallVector<int64_t> partialShape = {parts};
  llvm::append_range(partialShape, full.getShape().drop_front(k));
  auto partialType = RankedTensorType::get(partialShape, full.getElementType());
  SmallVector<AffineMap> maps;
  for (Value in : split)
    maps.push_back(broadcastMap(ctx, ty(in).getShape(), splitShape, m));
  SmallVector<AffineExpr> outExprs = {getAffineDimExpr(0, ctx)};
  for (unsigned d = 2; d < m; ++d)
    outExprs.push_back(getAffineDimExpr(d, ctx));
  maps.push_back(AffineMap::get(m, 0, outExprs, ctx));
  SmallVector<utils::IteratorType> iters(m, utils::IteratorType::parallel);
  iters[1] = utils::IteratorType::reduction;
  Value partial =
      linalg::GenericOp::create(
          b, loc, TypeRange{partialType}, split,
          ValueRange{zeroFilled(b, loc, partialType)}, maps, iters,
          [&](OpBuilder &nb, Location l, ValueRange a) {
            Value v = value(nb, l, a.drop_back());
            linalg::YieldOp::create(
                nb, l, arith::AddFOp::create(nb, l, a.back(), v).getResult());
          })
          .getResult(0);
  // Then the partials: [1, rest], reshaped to the kept [1, .., 1, rest].
  Value total = reduceKeepOf(b, loc, partialType, {partial}, {0},
                             ReduceKind::Sum,
                             [](OpBuilder &, Location, ValueRange a) { return a[0]; });
  if (k == 1)
    return total;
  SmallVector<int64_t> keptShape(full.getShape());
  for (int64_t d = 0; d < k; ++d)
    keptShape[d] = 1;
  SmallVector<ReassociationIndices> expand = {
      llvm::to_vector(llvm::seq<int64_t>(0, k))};
  for (int64_t d = k; d < n; ++d)
    expand.push_back({d});
  return tensor::ExpandShapeOp::create(
      b, loc, RankedTensorType::get(keptShape, full.getElementType()), total,
      expand);
}

Value reduceKeep(PatternRewriter &b, Location loc, Value x,
                 ArrayRef<int64_t> dims, ReduceKind kind) {
  return reduceKeepOf(b, loc, ty(x), {x}, dims, kind,
                      [](OpBuilder &, Location, ValueRange a) { return a[0]; });
}

/// Reshapes a reduceKeep result to `outType` (dropping the kept size-1
/// dimensions) unless it already has that type.
Value dropDims(PatternRewriter &b, Location loc, Value x,
               RankedTensorType outType) {
  if (ty(x) == outType)
    return x;
  auto shapeType = RankedTensorType::get({outType.getRank()}, b.getIndexType());
  SmallVector<APInt> sizes;
  for (int64_t d : outType.getShape())
    sizes.push_back(APInt(64, d));
  Value shape = arith::ConstantOp::create(b, loc,
                                          DenseElementsAttr::get(shapeType, sizes));
  return tensor::ReshapeOp::create(b, loc, outType, x, shape);
}

using BinFn = function_ref<Value(OpBuilder &, Location, ValueRange)>;

Value binary(PatternRewriter &b, Location loc, Value lhs, Value rhs,
             BinFn fn) {
  // The result has the broadcast shape of both operands.
  RankedTensorType a = ty(lhs), c = ty(rhs);
  size_t n = std::max(a.getRank(), c.getRank());
  SmallVector<int64_t> shape(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.getRank() ? 1 : a.getDimSize(i - (n - a.getRank()));
    int64_t dc = i < n - c.getRank() ? 1 : c.getDimSize(i - (n - c.getRank()));
    shape[i] = da == 1 ? dc : da;
  }
  return elementwise(b, loc, RankedTensorType::get(shape, a.getElementType()),
                     {lhs, rhs}, fn);
}

Value addF(OpBuilder &b, Location l, ValueRange a) {
  return arith::AddFOp::create(b, l, a[0], a[1]);
}

using PreFn = function_ref<Value(OpBuilder &, Location, Value)>;

/// Softmax along `dim` of pre(x): exp(p - max) / sum(exp(p - max)), in three
/// passes over x (max, sum, normalize). `pre` (e.g. attention's scale and
/// causal mask) is recomputed in each pass instead of materialized, which
/// measured faster than separate element-wise passes (bench/RESULTS.md).
Value softmax(PatternRewriter &b, Location loc, Value x, int64_t dim,
              PreFn pre = [](OpBuilder &, Location, Value v) { return v; }) {
  RankedTensorType full = ty(x);
  Value mx = reduceKeepOf(b, loc, full, {x}, {dim}, ReduceKind::Max,
                          [&](OpBuilder &nb, Location l, ValueRange a) {
                            return pre(nb, l, a[0]);
                          });
  auto shifted = [&](OpBuilder &nb, Location l, ValueRange a) -> Value {
    return math::ExpOp::create(
        nb, l, arith::SubFOp::create(nb, l, pre(nb, l, a[0]), a[1]));
  };
  Value sum = reduceKeepOf(b, loc, full, {x, mx}, {dim}, ReduceKind::Sum,
                           shifted);
  return elementwise(b, loc, full, {x, mx, sum},
                     [&](OpBuilder &nb, Location l, ValueRange a) -> Value {
                       return arith::DivFOp::create(nb, l, shifted(nb, l, a),
                                                    a[2]);
                     });
}

/// Multiplies every element by a constant.
Value scale(PatternRewriter &b, Location loc, Value x, double factor) {
  return elementwise(b, loc, ty(x), {x},
                     [&](OpBuilder &nb, Location l, ValueRange a) -> Value {
                       return arith::MulFOp::create(
                           nb, l, a[0], floatConst(nb, l, a[0].getType(), factor));
                     });
}

/// 1 / sqrt(sum * inv + eps): the normalizer of layer and RMS norm, from a
/// sum over `1/inv` elements (built inside a generic's body).
Value rsqrtMean(OpBuilder &b, Location l, Value sum, double inv, double eps) {
  Type et = sum.getType();
  Value mean = arith::MulFOp::create(b, l, sum, floatConst(b, l, et, inv));
  return math::RsqrtOp::create(
      b, l, arith::AddFOp::create(b, l, mean, floatConst(b, l, et, eps)));
}

/// Layer norm's statistics over `dims`: the mean (kept dims of size 1) and
/// the sum of squared deviations from it (two passes over x).
std::pair<Value, Value> meanAndSquares(PatternRewriter &b, Location loc, Value x,
                                       ArrayRef<int64_t> dims, double inv);

SmallVector<int64_t> trailingDims(int64_t rank, int64_t count) {
  SmallVector<int64_t> dims;
  for (int64_t i = rank - count; i < rank; ++i)
    dims.push_back(i);
  return dims;
}

int64_t countOf(RankedTensorType t, ArrayRef<int64_t> dims) {
  int64_t n = 1;
  for (int64_t d : dims)
    n *= t.getDimSize(d);
  return n;
}


std::pair<Value, Value> meanAndSquares(PatternRewriter &b, Location loc, Value x,
                                       ArrayRef<int64_t> dims, double inv) {
  Value mean = scale(b, loc, reduceKeep(b, loc, x, dims, ReduceKind::Sum), inv);
  Value squares = reduceKeepOf(b, loc, ty(x), {x, mean}, dims, ReduceKind::Sum,
                               [](OpBuilder &nb, Location l, ValueRange a) -> Value {
                                 Value d = arith::SubFOp::create(nb, l, a[0], a[1]);
                                 return arith::MulFOp::create(nb, l, d, d);
                               });
  return {mean, squares};
}

/// Calls `_mlir_ciface_<name>(lhs, rhs, out)` of the runtime kernels on f32
/// tensors of one rank (2 or 3) and returns the result as a tensor.
Value callKernel(PatternRewriter &b, Location loc, StringRef name, Value lhs,
                 Value rhs, RankedTensorType outType) {
  MLIRContext *ctx = b.getContext();
  auto dyn = MemRefType::get(
      SmallVector<int64_t>(outType.getRank(), ShapedType::kDynamic),
      b.getF32Type());
  ModuleOp module = lhs.getParentRegion()->getParentOfType<ModuleOp>();
  if (!module.lookupSymbol<func::FuncOp>(name)) {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(module.getBody());
    auto decl = func::FuncOp::create(b, loc, name,
                                     FunctionType::get(ctx, {dyn, dyn, dyn}, {}));
    decl.setPrivate();
    decl->setAttr("llvm.emit_c_interface", UnitAttr::get(ctx));
  }
  auto asBuffer = [&](Value t) -> Value {
    auto mt = MemRefType::get(ty(t).getShape(), b.getF32Type());
    Value m = bufferization::ToBufferOp::create(b, loc, mt, t, /*readOnly=*/true);
    return memref::CastOp::create(b, loc, dyn, m);
  };
  auto outMem = MemRefType::get(outType.getShape(), b.getF32Type());
  Value out = memref::AllocOp::create(b, loc, outMem);
  func::CallOp::create(b, loc, name, TypeRange{},
                       ValueRange{asBuffer(lhs), asBuffer(rhs),
                                  memref::CastOp::create(b, loc, dyn, out)});
  return bufferization::ToTensorOp::create(b, loc, outType, out,
                                           /*restrict=*/true, /*writable=*/true);
}

/// [[0, ..., rank - 2], [rank - 1]]: the leading dimensions as one.
SmallVector<ReassociationIndices> leadingAsOne(int64_t rank) {
  ReassociationIndices lead;
  for (int64_t i = 0; i + 1 < rank; ++i)
    lead.push_back(i);
  return {lead, {rank - 1}};
}

/// Collapses all leading dimensions: [a, b, ..., k] -> [a*b*..., k].
Value flattenLeading(PatternRewriter &b, Location loc, Value x) {
  RankedTensorType t = ty(x);
  if (t.getRank() == 2)
    return x;
  return tensor::CollapseShapeOp::create(b, loc, x, leadingAsOne(t.getRank()));
}

/// The inverse of flattenLeading: [r0 * ... * rk, d] -> `type`.
Value unflattenLeading(PatternRewriter &b, Location loc, Value x,
                       RankedTensorType type) {
  if (type.getRank() == 2)
    return x;
  return tensor::ExpandShapeOp::create(b, loc, type, x,
                                       leadingAsOne(type.getRank()));
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
  LinearLowering(MLIRContext *ctx, bool useBlas)
      : StaticPattern(ctx), useBlas(useBlas) {}
  bool useBlas;
  Value lower(nn::LinearOp op, PatternRewriter &b) const override {
    MLIRContext *ctx = b.getContext();
    RankedTensorType out = ty(op.getResult());
    if (useBlas && out.getElementType().isF32()) {
      Location loc = op.getLoc();
      Value x2 = flattenLeading(b, loc, op.getInput());
      auto flatOut = RankedTensorType::get(
          {ty(x2).getDimSize(0), out.getShape().back()}, b.getF32Type());
      Value y = callKernel(b, loc, "tessera_linear_f32", x2, op.getWeight(),
                           flatOut);
      y = unflattenLeading(b, loc, y, out);
      if (Value bias = op.getBias())
        y = elementwise(b, loc, out, {y, bias}, addF);
      return y;
    }
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

Value flattenBatch(PatternRewriter &b, Location loc, Value x);
Value unflattenBatch(PatternRewriter &b, Location loc, Value x,
                     RankedTensorType type);

struct MatmulLowering : StaticPattern<nn::MatmulOp> {
  MatmulLowering(MLIRContext *ctx, bool useBlas)
      : StaticPattern(ctx), useBlas(useBlas) {}
  bool useBlas;
  Value lower(nn::MatmulOp op, PatternRewriter &b) const override {
    MLIRContext *ctx = b.getContext();
    RankedTensorType out = ty(op.getResult());
    if (useBlas && out.getElementType().isF32() && out.getRank() == 2)
      return callKernel(b, op.getLoc(), "tessera_matmul_f32", op.getLhs(),
                        op.getRhs(), out);
    if (useBlas && out.getElementType().isF32() &&
        ty(op.getRhs()).getRank() == 2) {
      // [..., M, K] @ [K, N]: one GEMM over the flattened leading dims.
      Location loc = op.getLoc();
      Value a2 = flattenLeading(b, loc, op.getLhs());
      auto flatOut = RankedTensorType::get(
          {ty(a2).getDimSize(0), out.getShape().back()}, b.getF32Type());
      return unflattenLeading(
          b, loc,
          callKernel(b, loc, "tessera_matmul_f32", a2, op.getRhs(), flatOut),
          out);
    }
    ArrayRef<int64_t> batch = out.getShape().drop_back(2);
    if (useBlas && out.getElementType().isF32() && out.getRank() >= 3 &&
        ty(op.getLhs()).getShape().drop_back(2) == batch &&
        ty(op.getRhs()).getShape().drop_back(2) == batch) {
      // Same batch dims on both sides (the products of attention's
      // gradient): one batched GEMM over the flattened batch.
      Location loc = op.getLoc();
      Value a3 = flattenBatch(b, loc, op.getLhs());
      Value b3 = flattenBatch(b, loc, op.getRhs());
      int64_t r = out.getRank();
      auto flatOut = RankedTensorType::get(
          {ty(a3).getDimSize(0), out.getDimSize(r - 2), out.getDimSize(r - 1)},
          b.getF32Type());
      return unflattenBatch(
          b, loc, callKernel(b, loc, "tessera_bmm_f32", a3, b3, flatOut), out);
    }
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


template <typename OpT, ReduceKind Kind, bool Mean>
struct ReduceLowering : StaticPattern<OpT> {
  using StaticPattern<OpT>::StaticPattern;
  Value lower(OpT op, PatternRewriter &b) const override {
    RankedTensorType in = ty(op.getInput());
    SmallVector<int64_t> dims;
    // I64Attr getters return uint64_t: reinterpret as signed first.
    if (auto attr = op.getDim()) {
      int64_t d = static_cast<int64_t>(*attr);
      dims.push_back(d < 0 ? d + in.getRank() : d);
    }
    else
      dims = trailingDims(in.getRank(), in.getRank());
    if (!isa<FloatType>(in.getElementType()))
      return Value();
    Value r = reduceKeep(b, op.getLoc(), op.getInput(), dims, Kind);
    if (Mean)
      r = scale(b, op.getLoc(), r, 1.0 / double(countOf(in, dims)));
    return dropDims(b, op.getLoc(), r, ty(op.getResult()));
  }
};

struct SoftmaxLowering : StaticPattern<nn::SoftmaxOp> {
  using StaticPattern::StaticPattern;
  Value lower(nn::SoftmaxOp op, PatternRewriter &b) const override {
    int64_t r = ty(op.getInput()).getRank();
    int64_t d = static_cast<int64_t>(op.getDim());
    return softmax(b, op.getLoc(), op.getInput(), d < 0 ? d + r : d);
  }
};

struct LayerNormLowering : StaticPattern<nn::LayerNormOp> {
  using StaticPattern::StaticPattern;
  Value lower(nn::LayerNormOp op, PatternRewriter &b) const override {
    // Three passes: mean, variance of (x - mean), then the normalized,
    // scaled and shifted output in one element-wise loop.
    Location loc = op.getLoc();
    Value x = op.getInput();
    RankedTensorType t = ty(x);
    auto dims = trailingDims(t.getRank(), ty(op.getWeight()).getRank());
    double inv = 1.0 / double(countOf(t, dims));
    auto [mean, var] = meanAndSquares(b, loc, x, dims, inv);
    double eps = op.getEps().convertToDouble();
    return elementwise(
        b, loc, t, {x, mean, var, op.getWeight(), op.getBias()},
        [&](OpBuilder &nb, Location l, ValueRange a) -> Value {
          Value xhat = arith::MulFOp::create(
              nb, l, arith::SubFOp::create(nb, l, a[0], a[1]),
              rsqrtMean(nb, l, a[2], inv, eps));
          return arith::AddFOp::create(nb, l, arith::MulFOp::create(nb, l, xhat, a[3]),
                                       a[4]);
        });
  }
};

struct RMSNormLowering : StaticPattern<nn::RMSNormOp> {
  using StaticPattern::StaticPattern;
  Value lower(nn::RMSNormOp op, PatternRewriter &b) const override {
    // Two passes: mean of squares, then the scaled output.
    Location loc = op.getLoc();
    Value x = op.getInput();
    RankedTensorType t = ty(x);
    auto dims = trailingDims(t.getRank(), ty(op.getWeight()).getRank());
    double inv = 1.0 / double(countOf(t, dims));
    Value ss = reduceKeepOf(b, loc, t, {x}, dims, ReduceKind::Sum,
                            [](OpBuilder &nb, Location l, ValueRange a) -> Value {
                              return arith::MulFOp::create(nb, l, a[0], a[0]);
                            });
    double eps = op.getEps().convertToDouble();
    return elementwise(
        b, loc, t, {x, ss, op.getWeight()},
        [&](OpBuilder &nb, Location l, ValueRange a) -> Value {
          return arith::MulFOp::create(
              nb, l, arith::MulFOp::create(nb, l, a[0], rsqrtMean(nb, l, a[1], inv, eps)),
              a[2]);
        });
  }
};

struct EmbeddingLowering : StaticPattern<nn::EmbeddingOp> {
  using StaticPattern::StaticPattern;
  Value lower(nn::EmbeddingOp op, PatternRewriter &b) const override {
    MLIRContext *ctx = b.getContext();
    RankedTensorType out = ty(op.getResult());
    unsigned n = out.getRank();
    SmallVector<AffineExpr> idxExprs;
    for (unsigned i = 0; i + 1 < n; ++i)
      idxExprs.push_back(getAffineDimExpr(i, ctx));
    Value table = op.getWeight();
    SmallVector<utils::IteratorType> iters(n, utils::IteratorType::parallel);
    return linalg::GenericOp::create(
               b, op.getLoc(), TypeRange{out}, ValueRange{op.getIndices()},
               ValueRange{emptyLike(b, op.getLoc(), out)},
               SmallVector<AffineMap>{AffineMap::get(n, 0, idxExprs, ctx),
                                      AffineMap::getMultiDimIdentityMap(n, ctx)},
               iters,
               [&](OpBuilder &nb, Location l, ValueRange a) {
                 Value row = arith::IndexCastOp::create(nb, l, nb.getIndexType(), a[0]);
                 Value col = linalg::IndexOp::create(nb, l, n - 1);
                 Value v = tensor::ExtractOp::create(nb, l, table, ValueRange{row, col});
                 linalg::YieldOp::create(nb, l, v);
               })
        .getResult(0);
  }
};

struct ArangeLowering : StaticPattern<nn::ArangeOp> {
  using StaticPattern::StaticPattern;
  Value lower(nn::ArangeOp op, PatternRewriter &b) const override {
    MLIRContext *ctx = b.getContext();
    RankedTensorType out = ty(op.getResult());
    return linalg::GenericOp::create(
               b, op.getLoc(), TypeRange{out}, ValueRange{},
               ValueRange{emptyLike(b, op.getLoc(), out)},
               SmallVector<AffineMap>{AffineMap::getMultiDimIdentityMap(1, ctx)},
               SmallVector<utils::IteratorType>{utils::IteratorType::parallel},
               [&](OpBuilder &nb, Location l, ValueRange) {
                 Value i = linalg::IndexOp::create(nb, l, 0);
                 Value v = arith::IndexCastOp::create(nb, l, out.getElementType(), i);
                 linalg::YieldOp::create(nb, l, v);
               })
        .getResult(0);
  }
};

struct SliceLowering : StaticPattern<nn::SliceOp> {
  using StaticPattern::StaticPattern;
  Value lower(nn::SliceOp op, PatternRewriter &b) const override {
    RankedTensorType out = ty(op.getResult());
    SmallVector<OpFoldResult> offsets, sizes, strides;
    for (int64_t i = 0; i < out.getRank(); ++i) {
      offsets.push_back(b.getIndexAttr(op.getStart()[i]));
      sizes.push_back(b.getIndexAttr(out.getDimSize(i)));
      strides.push_back(b.getIndexAttr(op.getStride()[i]));
    }
    return tensor::ExtractSliceOp::create(b, op.getLoc(), out, op.getInput(),
                                          offsets, sizes, strides);
  }
};

struct ConcatLowering : StaticPattern<nn::ConcatOp> {
  using StaticPattern::StaticPattern;
  Value lower(nn::ConcatOp op, PatternRewriter &b) const override {
    RankedTensorType out = ty(op.getResult());
    int64_t r = out.getRank();
    int64_t d = static_cast<int64_t>(op.getDim());
    d = d < 0 ? d + r : d;
    Value acc = emptyLike(b, op.getLoc(), out);
    int64_t at = 0;
    for (Value in : op.getInputs()) {
      RankedTensorType t = ty(in);
      SmallVector<OpFoldResult> offsets, sizes, strides;
      for (int64_t i = 0; i < r; ++i) {
        offsets.push_back(b.getIndexAttr(i == d ? at : 0));
        sizes.push_back(b.getIndexAttr(t.getDimSize(i)));
        strides.push_back(b.getIndexAttr(1));
      }
      acc = tensor::InsertSliceOp::create(b, op.getLoc(), in, acc, offsets,
                                          sizes, strides);
      at += t.getDimSize(d);
    }
    return acc;
  }
};

struct CrossEntropyLowering : StaticPattern<nn::CrossEntropyOp> {
  using StaticPattern::StaticPattern;
  Value lower(nn::CrossEntropyOp op, PatternRewriter &b) const override {
    // mean over rows of logsumexp(l) - l[target]
    MLIRContext *ctx = b.getContext();
    Location loc = op.getLoc();
    Value logits = op.getLogits();
    RankedTensorType lt = ty(logits);
    int64_t r = lt.getRank();
    Value mx = reduceKeep(b, loc, logits, {r - 1}, ReduceKind::Max);
    Value e = binary(b, loc, logits, mx, [](OpBuilder &nb, Location l, ValueRange a) -> Value {
      return math::ExpOp::create(nb, l, arith::SubFOp::create(nb, l, a[0], a[1]));
    });
    Value lse = binary(b, loc, reduceKeep(b, loc, e, {r - 1}, ReduceKind::Sum), mx,
                       [](OpBuilder &nb, Location l, ValueRange a) -> Value {
                         return arith::AddFOp::create(
                             nb, l, math::LogOp::create(nb, l, a[0]), a[1]);
                       });
    // Per-row loss over the targets' shape.
    RankedTensorType tt = ty(op.getTargets());
    unsigned n = tt.getRank();
    auto rowType = RankedTensorType::get(tt.getShape(), lt.getElementType());
    SmallVector<AffineExpr> lseExprs;
    for (unsigned i = 0; i < n; ++i)
      lseExprs.push_back(getAffineDimExpr(i, ctx));
    lseExprs.push_back(getAffineConstantExpr(0, ctx));
    SmallVector<utils::IteratorType> iters(n, utils::IteratorType::parallel);
    Value rows = linalg::GenericOp::create(
                     b, loc, TypeRange{rowType}, ValueRange{op.getTargets(), lse},
                     ValueRange{emptyLike(b, loc, rowType)},
                     SmallVector<AffineMap>{AffineMap::getMultiDimIdentityMap(n, ctx),
                                            AffineMap::get(n, 0, lseExprs, ctx),
                                            AffineMap::getMultiDimIdentityMap(n, ctx)},
                     iters,
                     [&](OpBuilder &nb, Location l, ValueRange a) {
                       SmallVector<Value> idx;
                       for (unsigned i = 0; i < n; ++i)
                         idx.push_back(linalg::IndexOp::create(nb, l, i));
                       idx.push_back(arith::IndexCastOp::create(nb, l, nb.getIndexType(), a[0]));
                       Value picked = tensor::ExtractOp::create(nb, l, logits, idx);
                       Value loss = arith::SubFOp::create(nb, l, a[1], picked);
                       linalg::YieldOp::create(nb, l, loss);
                     })
                     .getResult(0);
    Value total = reduceKeep(b, loc, rows, trailingDims(n, n), ReduceKind::Sum);
    total = scale(b, loc, total, 1.0 / double(tt.getNumElements()));
    return dropDims(b, loc, total, ty(op.getResult()));
  }
};

/// Collapses all but the last two dimensions: [a, ..., m, k] -> [a*..., m, k].
Value flattenBatch(PatternRewriter &b, Location loc, Value x) {
  RankedTensorType t = ty(x);
  int64_t r = t.getRank();
  if (r == 3)
    return x;
  ReassociationIndices lead;
  for (int64_t i = 0; i + 2 < r; ++i)
    lead.push_back(i);
  if (lead.empty())
    return tensor::ExpandShapeOp::create(
        b, loc, RankedTensorType::get({1, t.getDimSize(0), t.getDimSize(1)},
                                      t.getElementType()),
        x, SmallVector<ReassociationIndices>{{0, 1}, {2}});
  return tensor::CollapseShapeOp::create(
      b, loc, x, SmallVector<ReassociationIndices>{lead, {r - 2}, {r - 1}});
}

/// The inverse of flattenBatch: [n, m, k] -> `type` ([a, ..., m, k]).
Value unflattenBatch(PatternRewriter &b, Location loc, Value x,
                     RankedTensorType type) {
  int64_t r = type.getRank();
  if (r == 3)
    return x;
  if (r == 2)
    return tensor::CollapseShapeOp::create(
        b, loc, x, SmallVector<ReassociationIndices>{{0, 1}, {2}});
  ReassociationIndices lead;
  for (int64_t i = 0; i + 2 < r; ++i)
    lead.push_back(i);
  return tensor::ExpandShapeOp::create(
      b, loc, type, x,
      SmallVector<ReassociationIndices>{lead, {r - 2}, {r - 1}});
}

/// Whether `grad` is the gradient of `fwd` (same operands and attributes,
/// and fwd's result as its `out`), both lowered to flash loops: then
/// `fwd`'s lowering also lowers `grad`, with the per-row log-sum-exp of its
/// forward loop.
bool isGradientOf(nn::AttentionGradOp grad, nn::AttentionOp fwd) {
  return grad.getOut() == fwd.getResult() && grad.getQuery() == fwd.getQuery() &&
         grad.getKey() == fwd.getKey() && grad.getValue() == fwd.getValue() &&
         grad.getCausal() == fwd.getCausal() &&
         grad.getScaleOrDefault() == fwd.getScaleOrDefault() && isStatic(grad) &&
         isStatic(fwd) &&
         flashAttentionApplies(ty(fwd.getQuery()), ty(fwd.getValue()));
}

/// The flash loops of an attention gradient, with the forward pass's
/// per-row log-sum-exp ([N, T], batch dimensions flattened) when there is
/// one.
SmallVector<Value> lowerFlashAttentionGrad(PatternRewriter &b,
                                           nn::AttentionGradOp op, Value lse) {
  Location loc = op.getLoc();
  auto flat = [&](Value x) { return flattenBatch(b, loc, x); };
  SmallVector<Value, 3> grads = buildFlashAttentionGrad(
      b, loc, flat(op.getGrad()), flat(op.getQuery()), flat(op.getKey()),
      flat(op.getValue()), flat(op.getOut()), op.getScaleOrDefault(),
      op.getCausal(), lse);
  return {unflattenBatch(b, loc, grads[0], ty(op.getQueryGrad())),
          unflattenBatch(b, loc, grads[1], ty(op.getKeyGrad())),
          unflattenBatch(b, loc, grads[2], ty(op.getValueGrad()))};
}

struct AttentionLowering : StaticPattern<nn::AttentionOp> {
  AttentionLowering(MLIRContext *ctx, bool useBlas, bool flash, bool mma)
      : StaticPattern(ctx), useBlas(useBlas), flash(flash), mma(mma) {}
  bool useBlas, flash, mma;

  /// The format ("bf16"/"f16") all of q, k and v are rounded to by the
  /// mixed-precision policy, or "" when they are not.
  static StringRef roundedFormat(nn::AttentionOp op) {
    StringRef format;
    for (Value x : {op.getQuery(), op.getKey(), op.getValue()}) {
      auto round = x.getDefiningOp<precision::RoundOp>();
      if (!round || (!format.empty() && round.getFormat() != format))
        return "";
      format = round.getFormat();
    }
    return format;
  }

  /// Scale, causal mask (-inf above the diagonal) and softmax of scores
  /// whose last two dimensions are (query, key).
  static Value probabilities(PatternRewriter &b, Location loc, Value scores,
                             double sc, bool causal) {
    unsigned r = ty(scores).getRank();
    return softmax(b, loc, scores, r - 1,
                   [&](OpBuilder &nb, Location l, Value v) -> Value {
                     Type et = v.getType();
                     v = arith::MulFOp::create(nb, l, v, floatConst(nb, l, et, sc));
                     if (!causal)
                       return v;
                     Value i = linalg::IndexOp::create(nb, l, r - 2);
                     Value j = linalg::IndexOp::create(nb, l, r - 1);
                     Value future = arith::CmpIOp::create(
                         nb, l, arith::CmpIPredicate::ugt, j, i);
                     return arith::SelectOp::create(
                         nb, l, future,
                         floatConst(nb, l, et, -std::numeric_limits<double>::infinity()),
                         v);
                   });
  }

  Value lower(nn::AttentionOp op, PatternRewriter &b) const override {
    MLIRContext *ctx = b.getContext();
    Location loc = op.getLoc();
    RankedTensorType qt = ty(op.getQuery()), kt = ty(op.getKey());
    unsigned r = qt.getRank();
    double sc = op.getScaleOrDefault();
    if (flash && flashAttentionApplies(qt, ty(op.getValue()))) {
      // The gradients of this very attention (autodiff's train_step) get
      // each query row's log-sum-exp from the forward loop.
      SmallVector<nn::AttentionGradOp> grads;
      for (Operation *user : op->getUsers())
        if (auto grad = dyn_cast<nn::AttentionGradOp>(user))
          if (isGradientOf(grad, op))
            grads.push_back(grad);
      Value q3 = flattenBatch(b, loc, op.getQuery());
      Value k3 = flattenBatch(b, loc, op.getKey());
      Value v3 = flattenBatch(b, loc, op.getValue());
      StringRef format = mma ? roundedFormat(op) : "";
      bool onTensorCores =
          !format.empty() && mmaAttentionApplies(ty(q3), ty(k3), ty(v3));
      FlashForward fwd =
          onTensorCores
              ? buildMmaAttention(b, loc, q3, k3, v3, sc, op.getCausal(),
                                  /*withLse=*/!grads.empty(), format)
              : buildFlashAttention(b, loc, q3, k3, v3, sc, op.getCausal(),
                                    /*withLse=*/!grads.empty());
      Value o = unflattenBatch(b, loc, fwd.out, ty(op.getResult()));
      for (nn::AttentionGradOp grad : grads) {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPoint(grad);
        if (!onTensorCores) {
          b.replaceOp(grad, lowerFlashAttentionGrad(b, grad, fwd.lse));
          continue;
        }
        SmallVector<Value, 3> d = buildMmaAttentionGrad(
            b, loc, flattenBatch(b, loc, grad.getGrad()), q3, k3, v3, fwd.out,
            fwd.lse, sc, op.getCausal(), format);
        b.replaceOp(grad, {unflattenBatch(b, loc, d[0], ty(grad.getQueryGrad())),
                           unflattenBatch(b, loc, d[1], ty(grad.getKeyGrad())),
                           unflattenBatch(b, loc, d[2],
                                          ty(grad.getValueGrad()))});
      }
      return o;
    }
    if (useBlas && qt.getElementType().isF32()) {
      // Two batched GEMMs over the flattened (batch, head) dimensions.
      Value q3 = flattenBatch(b, loc, op.getQuery());
      Value k3 = flattenBatch(b, loc, op.getKey());
      Value v3 = flattenBatch(b, loc, op.getValue());
      int64_t n = ty(q3).getDimSize(0);
      auto st = RankedTensorType::get(
          {n, qt.getDimSize(r - 2), kt.getDimSize(r - 2)}, b.getF32Type());
      Value s = callKernel(b, loc, "tessera_bmm_nt_f32", q3, k3, st);
      Value p = probabilities(b, loc, s, sc, op.getCausal());
      RankedTensorType out = ty(op.getResult());
      auto ot = RankedTensorType::get(
          {n, qt.getDimSize(r - 2), out.getShape().back()}, b.getF32Type());
      return unflattenBatch(
          b, loc, callKernel(b, loc, "tessera_bmm_f32", p, v3, ot), out);
    }
    int64_t tk = kt.getDimSize(r - 2);
    // scores[..., i, j] = sum_d q[..., i, d] * k[..., j, d]
    SmallVector<int64_t> sShape(qt.getShape());
    sShape[r - 1] = tk;
    auto st = RankedTensorType::get(sShape, qt.getElementType());
    unsigned n = r + 1;
    SmallVector<AffineExpr> qe, ke;
    for (unsigned i = 0; i + 2 < r; ++i) {
      qe.push_back(getAffineDimExpr(i, ctx));
      ke.push_back(getAffineDimExpr(i, ctx));
    }
    qe.append({getAffineDimExpr(r - 2, ctx), getAffineDimExpr(r, ctx)});
    ke.append({getAffineDimExpr(r - 1, ctx), getAffineDimExpr(r, ctx)});
    Value scores = contraction(b, loc, st, op.getQuery(), op.getKey(),
                               AffineMap::get(n, 0, qe, ctx),
                               AffineMap::get(n, 0, ke, ctx));
    Value p = probabilities(b, loc, scores, sc, op.getCausal());
    // out[..., i, e] = sum_j p[..., i, j] * v[..., j, e]
    RankedTensorType out = ty(op.getResult());
    SmallVector<AffineExpr> pe, ve;
    for (unsigned i = 0; i + 2 < r; ++i) {
      pe.push_back(getAffineDimExpr(i, ctx));
      ve.push_back(getAffineDimExpr(i, ctx));
    }
    pe.append({getAffineDimExpr(r - 2, ctx), getAffineDimExpr(r, ctx)});
    ve.append({getAffineDimExpr(r, ctx), getAffineDimExpr(r - 1, ctx)});
    return contraction(b, loc, out, p, op.getValue(), AffineMap::get(n, 0, pe, ctx),
                       AffineMap::get(n, 0, ve, ctx));
  }
};

//===----------------------------------------------------------------------===//
// Gradient ops (built by the VJPs in dialects/nn/IR/NNGradients.cpp)
//===----------------------------------------------------------------------===//

/// Lowers an op with several results; `lower` returns them in order.
template <typename OpT>
struct StaticMultiPattern : OpRewritePattern<OpT> {
  using OpRewritePattern<OpT>::OpRewritePattern;
  LogicalResult matchAndRewrite(OpT op, PatternRewriter &b) const final {
    if (!isStatic(op))
      return b.notifyMatchFailure(op, "dynamic shapes");
    SmallVector<Value> results = lower(op, b);
    if (results.empty())
      return failure();
    b.replaceOp(op, results);
    return success();
  }
  /// The results in order, or none when this pattern does not apply.
  virtual SmallVector<Value> lower(OpT op, PatternRewriter &b) const = 0;
};

/// Flash-style loops when asked for and the shapes qualify; otherwise the
/// composed products (nn ops, lowered by the other patterns).
struct AttentionGradLowering : StaticMultiPattern<nn::AttentionGradOp> {
  AttentionGradLowering(MLIRContext *ctx, bool flash)
      : StaticMultiPattern(ctx), flash(flash) {}
  bool flash;

  SmallVector<Value> lower(nn::AttentionGradOp op,
                           PatternRewriter &b) const override {
    if (!flash || !flashAttentionApplies(ty(op.getQuery()), ty(op.getValue())))
      return llvm::to_vector(op.decompose(b));
    // Lowered together with its forward pass (AttentionLowering).
    if (auto fwd = op.getOut().getDefiningOp<nn::AttentionOp>();
        fwd && isGradientOf(op, fwd))
      return {};
    return lowerFlashAttentionGrad(b, op, Value());
  }
};

struct ReluGradLowering : StaticPattern<nn::ReluGradOp> {
  using StaticPattern::StaticPattern;
  Value lower(nn::ReluGradOp op, PatternRewriter &b) const override {
    return elementwise(b, op.getLoc(), ty(op.getResult()),
                       {op.getGrad(), op.getInput()},
                       [](OpBuilder &nb, Location l, ValueRange a) -> Value {
                         Value z = floatConst(nb, l, a[0].getType(), 0.0);
                         Value pos = arith::CmpFOp::create(
                             nb, l, arith::CmpFPredicate::OGT, a[1], z);
                         return arith::SelectOp::create(nb, l, pos, a[0], z);
                       });
  }
};

struct GeluGradLowering : StaticPattern<nn::GeluGradOp> {
  using StaticPattern::StaticPattern;
  Value lower(nn::GeluGradOp op, PatternRewriter &b) const override {
    // gelu = 0.5 x (1 + t), t = tanh(c (x + a x^3)):
    // d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 a x^2).
    return elementwise(
        b, op.getLoc(), ty(op.getResult()), {op.getGrad(), op.getInput()},
        [](OpBuilder &nb, Location l, ValueRange a) -> Value {
          Type t = a[1].getType();
          auto c = [&](double v) { return floatConst(nb, l, t, v); };
          auto mulf = [&](Value x, Value y) -> Value {
            return arith::MulFOp::create(nb, l, x, y);
          };
          auto addf = [&](Value x, Value y) -> Value {
            return arith::AddFOp::create(nb, l, x, y);
          };
          Value x = a[1], x2 = mulf(x, x);
          Value inner = mulf(c(0.7978845608028654),
                             addf(x, mulf(c(0.044715), mulf(x2, x))));
          Value th = math::TanhOp::create(nb, l, inner);
          Value left = mulf(c(0.5), addf(c(1.0), th));
          Value sech2 = arith::SubFOp::create(nb, l, c(1.0), mulf(th, th));
          Value dInner = mulf(c(0.7978845608028654),
                              addf(c(1.0), mulf(c(3 * 0.044715), x2)));
          Value right = mulf(mulf(c(0.5), x), mulf(sech2, dInner));
          return mulf(a[0], addf(left, right));
        });
  }
};

struct SiluGradLowering : StaticPattern<nn::SiluGradOp> {
  using StaticPattern::StaticPattern;
  Value lower(nn::SiluGradOp op, PatternRewriter &b) const override {
    // s = sigmoid(x); d/dx (x s) = s (1 + x (1 - s)).
    return elementwise(
        b, op.getLoc(), ty(op.getResult()), {op.getGrad(), op.getInput()},
        [](OpBuilder &nb, Location l, ValueRange a) -> Value {
          Type t = a[1].getType();
          Value one = floatConst(nb, l, t, 1.0);
          Value e = math::ExpOp::create(nb, l, arith::NegFOp::create(nb, l, a[1]));
          Value s = arith::DivFOp::create(nb, l, one,
                                          arith::AddFOp::create(nb, l, one, e));
          Value oneMinus = arith::SubFOp::create(nb, l, one, s);
          Value d = arith::MulFOp::create(
              nb, l, s,
              arith::AddFOp::create(nb, l, one,
                                    arith::MulFOp::create(nb, l, a[1], oneMinus)));
          return arith::MulFOp::create(nb, l, a[0], d);
        });
  }
};

/// Sums `value(inputs)` over the leading `rank - keep` dims of `full` and
/// returns it with the shape of the trailing dims (a weight's gradient).
Value sumLeading(PatternRewriter &b, Location loc, RankedTensorType full,
                 ValueRange inputs, RankedTensorType outType, ElemFn value) {
  SmallVector<int64_t> lead;
  for (int64_t i = 0; i < full.getRank() - outType.getRank(); ++i)
    lead.push_back(i);
  return dropDims(b, loc,
                  reduceKeepOf(b, loc, full, inputs, lead, ReduceKind::Sum, value),
                  outType);
}

struct LayerNormGradLowering : StaticMultiPattern<nn::LayerNormGradOp> {
  using StaticMultiPattern::StaticMultiPattern;
  SmallVector<Value> lower(nn::LayerNormGradOp op,
                           PatternRewriter &b) const override {
    // xhat = (x - mean) r, r = 1/sqrt(var + eps), gy = g w:
    //   dx = r (gy - mean(gy) - xhat mean(gy xhat)),
    //   dw = sum(g xhat), db = sum(g) over the leading dims.
    Location loc = op.getLoc();
    Value g = op.getGrad(), x = op.getInput(), w = op.getWeight();
    RankedTensorType t = ty(x), wt = ty(w);
    auto dims = trailingDims(t.getRank(), wt.getRank());
    double inv = 1.0 / double(countOf(t, dims));
    double eps = op.getEps().convertToDouble();
    auto [mean, var] = meanAndSquares(b, loc, x, dims, inv);
    // a = {.., x, mean, var}: the normalized value.
    auto xhat = [&](OpBuilder &nb, Location l, Value xv, Value m, Value v) -> Value {
      return arith::MulFOp::create(nb, l, arith::SubFOp::create(nb, l, xv, m),
                                   rsqrtMean(nb, l, v, inv, eps));
    };
    Value sumGy = reduceKeepOf(b, loc, t, {g, w}, dims, ReduceKind::Sum,
                               [](OpBuilder &nb, Location l, ValueRange a) -> Value {
                                 return arith::MulFOp::create(nb, l, a[0], a[1]);
                               });
    Value sumGyX = reduceKeepOf(
        b, loc, t, {g, w, x, mean, var}, dims, ReduceKind::Sum,
        [&](OpBuilder &nb, Location l, ValueRange a) -> Value {
          return arith::MulFOp::create(nb, l,
                                       arith::MulFOp::create(nb, l, a[0], a[1]),
                                       xhat(nb, l, a[2], a[3], a[4]));
        });
    Value dx = elementwise(
        b, loc, t, {g, w, x, mean, var, sumGy, sumGyX},
        [&](OpBuilder &nb, Location l, ValueRange a) -> Value {
          Type et = a[0].getType();
          Value gy = arith::MulFOp::create(nb, l, a[0], a[1]);
          Value xh = xhat(nb, l, a[2], a[3], a[4]);
          Value invN = floatConst(nb, l, et, inv);
          Value centered = arith::SubFOp::create(
              nb, l, arith::SubFOp::create(nb, l, gy,
                                           arith::MulFOp::create(nb, l, a[5], invN)),
              arith::MulFOp::create(nb, l, xh,
                                    arith::MulFOp::create(nb, l, a[6], invN)));
          return arith::MulFOp::create(nb, l, centered,
                                       rsqrtMean(nb, l, a[4], inv, eps));
        });
    Value dw = sumLeading(b, loc, t, {g, x, mean, var}, wt,
                          [&](OpBuilder &nb, Location l, ValueRange a) -> Value {
                            return arith::MulFOp::create(
                                nb, l, a[0], xhat(nb, l, a[1], a[2], a[3]));
                          });
    Value db = sumLeading(b, loc, t, {g}, wt,
                          [](OpBuilder &, Location, ValueRange a) { return a[0]; });
    return {dx, dw, db};
  }
};

struct RMSNormGradLowering : StaticMultiPattern<nn::RMSNormGradOp> {
  using StaticMultiPattern::StaticMultiPattern;
  SmallVector<Value> lower(nn::RMSNormGradOp op,
                           PatternRewriter &b) const override {
    // r = 1/sqrt(mean(x^2) + eps), gy = g w:
    //   dx = r gy - x r^3 mean(gy x),  dw = sum(g x r) over the leading dims.
    Location loc = op.getLoc();
    Value g = op.getGrad(), x = op.getInput(), w = op.getWeight();
    RankedTensorType t = ty(x), wt = ty(w);
    auto dims = trailingDims(t.getRank(), wt.getRank());
    double inv = 1.0 / double(countOf(t, dims));
    double eps = op.getEps().convertToDouble();
    Value ss = reduceKeepOf(b, loc, t, {x}, dims, ReduceKind::Sum,
                            [](OpBuilder &nb, Location l, ValueRange a) -> Value {
                              return arith::MulFOp::create(nb, l, a[0], a[0]);
                            });
    Value dot = reduceKeepOf(b, loc, t, {g, w, x}, dims, ReduceKind::Sum,
                             [](OpBuilder &nb, Location l, ValueRange a) -> Value {
                               return arith::MulFOp::create(
                                   nb, l, arith::MulFOp::create(nb, l, a[0], a[1]),
                                   a[2]);
                             });
    Value dx = elementwise(
        b, loc, t, {g, w, x, ss, dot},
        [&](OpBuilder &nb, Location l, ValueRange a) -> Value {
          Value r = rsqrtMean(nb, l, a[3], inv, eps);
          Value gy = arith::MulFOp::create(nb, l, a[0], a[1]);
          Value r3 = arith::MulFOp::create(nb, l, r, arith::MulFOp::create(nb, l, r, r));
          Value corr = arith::MulFOp::create(
              nb, l, arith::MulFOp::create(nb, l, a[2], r3),
              arith::MulFOp::create(nb, l, a[4],
                                    floatConst(nb, l, a[0].getType(), inv)));
          return arith::SubFOp::create(nb, l, arith::MulFOp::create(nb, l, r, gy),
                                       corr);
        });
    Value dw = sumLeading(b, loc, t, {g, x, ss}, wt,
                          [&](OpBuilder &nb, Location l, ValueRange a) -> Value {
                            return arith::MulFOp::create(
                                nb, l, arith::MulFOp::create(nb, l, a[0], a[1]),
                                rsqrtMean(nb, l, a[2], inv, eps));
                          });
    return {dx, dw};
  }
};

/// `x` as a rank-1 tensor.
Value flattenAll(PatternRewriter &b, Location loc, Value x) {
  if (ty(x).getRank() == 1)
    return x;
  return tensor::CollapseShapeOp::create(
      b, loc, x,
      SmallVector<ReassociationIndices>{
          llvm::to_vector(llvm::seq<int64_t>(0, ty(x).getRank()))});
}

struct EmbeddingGradLowering : StaticPattern<nn::EmbeddingGradOp> {
  using StaticPattern::StaticPattern;
  Value lower(nn::EmbeddingGradOp op, PatternRewriter &b) const override {
    // Row by row: acc[idx[i], :] += g[i, :]. An scf.for over the N rows with
    // the accumulator as iteration argument bufferizes to in-place updates,
    // so this is O(N D), not a one-hot product.
    Location loc = op.getLoc();
    RankedTensorType out = ty(op.getResult());
    int64_t dim = out.getDimSize(1);
    Value g = flattenLeading(b, loc, op.getGrad()); // [N, D]
    Value idx = flattenAll(b, loc, op.getIndices());
    int64_t n = ty(g).getDimSize(0);
    Value zero = arith::ConstantIndexOp::create(b, loc, 0);
    Value one = arith::ConstantIndexOp::create(b, loc, 1);
    Value count = arith::ConstantIndexOp::create(b, loc, n);
    auto rowType = RankedTensorType::get({1, dim}, out.getElementType());
    auto loop = scf::ForOp::create(
        b, loc, zero, count, one, ValueRange{zeroFilled(b, loc, out)},
        [&](OpBuilder &nb, Location l, Value i, ValueRange iter) {
          Value acc = iter[0];
          Value token = tensor::ExtractOp::create(nb, l, idx, ValueRange{i});
          Value row = arith::IndexCastOp::create(nb, l, nb.getIndexType(), token);
          SmallVector<OpFoldResult> sizes{nb.getIndexAttr(1), nb.getIndexAttr(dim)};
          SmallVector<OpFoldResult> strides{nb.getIndexAttr(1), nb.getIndexAttr(1)};
          Value gRow = tensor::ExtractSliceOp::create(
              nb, l, rowType, g, SmallVector<OpFoldResult>{i, nb.getIndexAttr(0)},
              sizes, strides);
          SmallVector<OpFoldResult> at{row, nb.getIndexAttr(0)};
          Value accRow = tensor::ExtractSliceOp::create(nb, l, rowType, acc, at,
                                                        sizes, strides);
          MLIRContext *ctx = nb.getContext();
          auto id = AffineMap::getMultiDimIdentityMap(2, ctx);
          Value sum = linalg::GenericOp::create(
                          nb, l, TypeRange{rowType}, ValueRange{gRow},
                          ValueRange{accRow}, SmallVector<AffineMap>{id, id},
                          SmallVector<utils::IteratorType>(
                              2, utils::IteratorType::parallel),
                          [](OpBuilder &bb, Location ll, ValueRange a) {
                            linalg::YieldOp::create(
                                bb, ll, arith::AddFOp::create(bb, ll, a[0], a[1])
                                            .getResult());
                          })
                          .getResult(0);
          Value next = tensor::InsertSliceOp::create(nb, l, sum, acc, at, sizes,
                                                     strides);
          scf::YieldOp::create(nb, l, next);
        });
    // Iteration i touches column j of the accumulator only in its j-th
    // element update: the GPU pipeline may run the columns in parallel,
    // each looping over the rows (tessera-gpu-interchange-row-loops).
    loop->setAttr("tessera.columns_independent", b.getUnitAttr());
    return loop.getResult(0);
  }
};

struct CrossEntropyGradLowering : StaticPattern<nn::CrossEntropyGradOp> {
  using StaticPattern::StaticPattern;
  Value lower(nn::CrossEntropyGradOp op, PatternRewriter &b) const override {
    // g * (softmax(logits) - onehot(targets)) / N
    MLIRContext *ctx = b.getContext();
    Location loc = op.getLoc();
    RankedTensorType lt = ty(op.getLogits());
    unsigned r = lt.getRank();
    Value p = softmax(b, loc, op.getLogits(), r - 1);
    double invN = 1.0 / double(ty(op.getTargets()).getNumElements());
    SmallVector<AffineExpr> rowExprs;
    for (unsigned i = 0; i + 1 < r; ++i)
      rowExprs.push_back(getAffineDimExpr(i, ctx));
    auto id = AffineMap::getMultiDimIdentityMap(r, ctx);
    return linalg::GenericOp::create(
               b, loc, TypeRange{lt}, ValueRange{p, op.getTargets(), op.getGrad()},
               ValueRange{emptyLike(b, loc, lt)},
               SmallVector<AffineMap>{id, AffineMap::get(r, 0, rowExprs, ctx),
                                      AffineMap::get(r, 0, {}, ctx), id},
               SmallVector<utils::IteratorType>(r, utils::IteratorType::parallel),
               [&](OpBuilder &nb, Location l, ValueRange a) {
                 Type et = a[0].getType();
                 Value c = linalg::IndexOp::create(nb, l, r - 1);
                 Value t = arith::IndexCastOp::create(nb, l, nb.getIndexType(), a[1]);
                 Value hit = arith::CmpIOp::create(nb, l, arith::CmpIPredicate::eq, c, t);
                 Value sub = arith::SelectOp::create(nb, l, hit, floatConst(nb, l, et, 1.0),
                                                     floatConst(nb, l, et, 0.0));
                 Value d = arith::SubFOp::create(nb, l, a[0], sub);
                 Value gs = arith::MulFOp::create(nb, l, a[2], floatConst(nb, l, et, invN));
                 linalg::YieldOp::create(nb, l,
                                         arith::MulFOp::create(nb, l, d, gs).getResult());
               })
        .getResult(0);
  }
};

/// `op`'s gradient inserted into its box of `into`.
Value insertSliceGrad(PatternRewriter &b, nn::SliceGradOp op, Value into) {
  RankedTensorType gt = ty(op.getGrad());
  SmallVector<OpFoldResult> offsets, sizes, strides;
  for (int64_t i = 0; i < gt.getRank(); ++i) {
    offsets.push_back(b.getIndexAttr(op.getStart()[i]));
    sizes.push_back(b.getIndexAttr(gt.getDimSize(i)));
    strides.push_back(b.getIndexAttr(op.getStride()[i]));
  }
  return tensor::InsertSliceOp::create(b, op.getLoc(), op.getGrad(), into,
                                       offsets, sizes, strides);
}

struct SliceGradLowering : StaticPattern<nn::SliceGradOp> {
  using StaticPattern::StaticPattern;
  Value lower(nn::SliceGradOp op, PatternRewriter &b) const override {
    return insertSliceGrad(b, op,
                           zeroFilled(b, op.getLoc(), ty(op.getResult())));
  }
};

//===----------------------------------------------------------------------===//
// Row kernels (the GPU pipeline): reductions over the last dimension and
// their use on the same row as one scf.forall over rows (RowKernels.cpp).
// They outrank the patterns above and decline what they do not cover.
//===----------------------------------------------------------------------===//

constexpr unsigned kRowBenefit = 2;

/// A per-row statistic [r0 * ... * rk] as [r0, ..., rk, 1], which
/// broadcasts against the rows of `type`.
Value keepRowDims(PatternRewriter &b, Location loc, Value stat,
                  RankedTensorType type) {
  SmallVector<int64_t> shape(type.getShape());
  shape.back() = 1;
  return tensor::ExpandShapeOp::create(
      b, loc, RankedTensorType::get(shape, type.getElementType()), stat,
      SmallVector<ReassociationIndices>{
          llvm::to_vector(llvm::seq<int64_t>(0, type.getRank()))});
}

struct RowSoftmaxLowering : StaticPattern<nn::SoftmaxOp> {
  RowSoftmaxLowering(MLIRContext *ctx, bool warps)
      : StaticPattern(ctx, kRowBenefit), warps(warps) {}
  bool warps;
  Value lower(nn::SoftmaxOp op, PatternRewriter &b) const override {
    RankedTensorType t = ty(op.getInput());
    int64_t dim = static_cast<int64_t>(op.getDim());
    if (!rowKernelApplies(t) || (dim != -1 && dim != t.getRank() - 1))
      return {};
    Location loc = op.getLoc();
    return unflattenLeading(
        b, loc, buildRowSoftmax(b, loc, flattenLeading(b, loc, op.getInput()), warps),
        t);
  }
};

/// The row kernel of each norm, on x as [rows, d].
Value normKernel(PatternRewriter &b, nn::LayerNormOp op, Value x, bool warps) {
  return buildRowLayerNorm(b, op.getLoc(), x, op.getWeight(), op.getBias(),
                           op.getEps().convertToDouble(), warps);
}
Value normKernel(PatternRewriter &b, nn::RMSNormOp op, Value x, bool warps) {
  return buildRowRMSNorm(b, op.getLoc(), x, op.getWeight(),
                         op.getEps().convertToDouble(), warps);
}

/// layer_norm and rms_norm over one normalized dimension.
template <typename OpT>
struct RowNormLowering : StaticPattern<OpT> {
  RowNormLowering(MLIRContext *ctx, bool warps)
      : StaticPattern<OpT>(ctx, kRowBenefit), warps(warps) {}
  bool warps;
  Value lower(OpT op, PatternRewriter &b) const override {
    RankedTensorType t = ty(op.getInput());
    if (!rowKernelApplies(t) || ty(op.getWeight()).getRank() != 1)
      return {};
    Location loc = op.getLoc();
    return unflattenLeading(
        b, loc, normKernel(b, op, flattenLeading(b, loc, op.getInput()), warps), t);
  }
};

/// A norm's gradient from its row kernel: `kernel(g, x)` (on [rows, d])
/// returns dx and per-row statistics, and the weight gradient sums
/// `dwTerm(g, x, statistics...)` over the rows (split into partial sums);
/// with `bias`, the bias gradient sums g. Returns {dx, dw[, db]}.
SmallVector<Value>
rowNormGrad(PatternRewriter &b, Location loc, Value g, Value x, Value w,
            function_ref<SmallVector<Value, 3>(Value, Value)> kernel,
            ElemFn dwTerm, bool bias) {
  RankedTensorType t = ty(x), wt = ty(w);
  SmallVector<Value, 3> r = kernel(flattenLeading(b, loc, g), flattenLeading(b, loc, x));
  SmallVector<Value> inputs = {g, x};
  for (Value stat : ArrayRef<Value>(r).drop_front())
    inputs.push_back(keepRowDims(b, loc, stat, t));
  SmallVector<Value> grads = {unflattenLeading(b, loc, r[0], t),
                              sumLeading(b, loc, t, inputs, wt, dwTerm)};
  if (bias)
    grads.push_back(
        sumLeading(b, loc, t, {g}, wt,
                   [](OpBuilder &, Location, ValueRange a) { return a[0]; }));
  return grads;
}

/// A norm's gradient from its warp kernel with column sums: `kernel(g, x)`
/// (on [rows, d]) returns dx and the partial sums of the weight's (and the
/// bias's) gradient, [blocks, d] each, which are summed here.
SmallVector<Value>
warpNormGrad(PatternRewriter &b, Location loc, Value g, Value x, Value w,
             function_ref<SmallVector<Value, 3>(Value, Value)> kernel) {
  RankedTensorType t = ty(x), wt = ty(w);
  SmallVector<Value, 3> r =
      kernel(flattenLeading(b, loc, g), flattenLeading(b, loc, x));
  SmallVector<Value> grads = {unflattenLeading(b, loc, r[0], t)};
  for (Value partials : ArrayRef<Value>(r).drop_front())
    grads.push_back(
        sumLeading(b, loc, ty(partials), {partials}, wt,
                   [](OpBuilder &, Location, ValueRange a) { return a[0]; }));
  return grads;
}

/// The warp kernel with column sums of each norm gradient.
SmallVector<Value, 3> normGradSumsKernel(PatternRewriter &b,
                                         nn::LayerNormGradOp op, Value g,
                                         Value x) {
  return buildWarpLayerNormGradSums(b, op.getLoc(), g, x, op.getWeight(),
                                    op.getEps().convertToDouble());
}
SmallVector<Value, 3> normGradSumsKernel(PatternRewriter &b,
                                         nn::RMSNormGradOp op, Value g,
                                         Value x) {
  SmallVector<Value, 2> r = buildWarpRMSNormGradSums(
      b, op.getLoc(), g, x, op.getWeight(), op.getEps().convertToDouble());
  return {r[0], r[1]};
}

/// The row kernel of each norm gradient, and its weight gradient's term.
SmallVector<Value, 3> normGradKernel(PatternRewriter &b, nn::LayerNormGradOp op,
                                     Value g, Value x, bool warps) {
  return buildRowLayerNormGrad(b, op.getLoc(), g, x, op.getWeight(),
                               op.getEps().convertToDouble(), warps);
}
SmallVector<Value, 3> normGradKernel(PatternRewriter &b, nn::RMSNormGradOp op,
                                     Value g, Value x, bool warps) {
  SmallVector<Value, 2> r =
      buildRowRMSNormGrad(b, op.getLoc(), g, x, op.getWeight(),
                          op.getEps().convertToDouble(), warps);
  return {r[0], r[1]};
}
/// g (x - mean) rstd, from {g, x, mean, rstd}.
Value normDwTerm(nn::LayerNormGradOp, OpBuilder &nb, Location l, ValueRange a) {
  Value xhat =
      arith::MulFOp::create(nb, l, arith::SubFOp::create(nb, l, a[1], a[2]), a[3]);
  return arith::MulFOp::create(nb, l, a[0], xhat);
}
/// g x rstd, from {g, x, rstd}.
Value normDwTerm(nn::RMSNormGradOp, OpBuilder &nb, Location l, ValueRange a) {
  return arith::MulFOp::create(nb, l, arith::MulFOp::create(nb, l, a[0], a[1]),
                               a[2]);
}

/// layer_norm_grad and rms_norm_grad over one normalized dimension.
template <typename OpT>
struct RowNormGradLowering : StaticMultiPattern<OpT> {
  RowNormGradLowering(MLIRContext *ctx, bool warps)
      : StaticMultiPattern<OpT>(ctx, kRowBenefit), warps(warps) {}
  bool warps;
  SmallVector<Value> lower(OpT op, PatternRewriter &b) const override {
    RankedTensorType t = ty(op.getInput());
    if (!rowKernelApplies(t) || ty(op.getWeight()).getRank() != 1)
      return {};
    bool layerNorm = std::is_same_v<OpT, nn::LayerNormGradOp>;
    if (warps && warpColumnSumsApply(t.getShape().back(), layerNorm ? 2 : 1))
      return warpNormGrad(b, op.getLoc(), op.getGrad(), op.getInput(),
                          op.getWeight(), [&](Value g, Value x) {
                            return normGradSumsKernel(b, op, g, x);
                          });
    return rowNormGrad(
        b, op.getLoc(), op.getGrad(), op.getInput(), op.getWeight(),
        [&](Value g, Value x) { return normGradKernel(b, op, g, x, warps); },
        [&](OpBuilder &nb, Location l, ValueRange a) {
          return normDwTerm(op, nb, l, a);
        },
        /*bias=*/layerNorm);
  }
};

/// The mean of per-row losses `rows` as cross-entropy `op`'s result: a
/// rank-0 sum, a full reduction that tessera-split-reductions splits into
/// parallel partial sums, then the scale.
Value meanLoss(PatternRewriter &b, nn::CrossEntropyOp op, Value rows) {
  Location loc = op.getLoc();
  MLIRContext *ctx = b.getContext();
  auto scalar = RankedTensorType::get({}, b.getF32Type());
  Value total =
      linalg::GenericOp::create(
          b, loc, TypeRange{scalar}, ValueRange{rows},
          ValueRange{zeroFilled(b, loc, scalar)},
          SmallVector<AffineMap>{AffineMap::getMultiDimIdentityMap(1, ctx),
                                 AffineMap::get(1, 0, {}, ctx)},
          SmallVector<utils::IteratorType>{utils::IteratorType::reduction},
          [](OpBuilder &nb, Location l, ValueRange a) {
            linalg::YieldOp::create(nb, l, addF(nb, l, {a[1], a[0]}));
          })
          .getResult(0);
  total = scale(b, loc, total,
                1.0 / double(ty(op.getTargets()).getNumElements()));
  return dropDims(b, loc, total, ty(op.getResult()));
}

/// Per-row losses from the row kernel, then their mean.
struct RowCrossEntropyLowering : StaticPattern<nn::CrossEntropyOp> {
  RowCrossEntropyLowering(MLIRContext *ctx, bool warps)
      : StaticPattern(ctx, kRowBenefit), warps(warps) {}
  bool warps;
  Value lower(nn::CrossEntropyOp op, PatternRewriter &b) const override {
    if (!rowKernelApplies(ty(op.getLogits())))
      return {};
    Location loc = op.getLoc();
    Value rows = buildRowCrossEntropy(
        b, loc, flattenLeading(b, loc, op.getLogits()),
        flattenAll(b, loc, op.getTargets()), warps);
    return meanLoss(b, op, rows);
  }
};

/// A training step's cross-entropy and its gradient on the same logits and
/// targets as one row kernel, which computes each row's softmax statistics
/// once for both: one pass over the logits less (for GPT-2's 8192 x 50304
/// f32 logits, 1.6 GB). The gradient's upstream value must already be
/// there at the loss (an argument, or defined before it) or be a constant.
/// Anchored on either op (the greedy driver may visit either first).
template <typename OpT>
struct RowCrossEntropyWithGradLowering : OpRewritePattern<OpT> {
  RowCrossEntropyWithGradLowering(MLIRContext *ctx, bool warps)
      : OpRewritePattern<OpT>(ctx, kRowBenefit + 1), warps(warps) {}
  bool warps;

  LogicalResult matchAndRewrite(OpT anchor, PatternRewriter &b) const override {
    nn::CrossEntropyOp op;
    nn::CrossEntropyGradOp grad;
    for (Operation *user : anchor.getLogits().getUsers()) {
      if constexpr (std::is_same_v<OpT, nn::CrossEntropyOp>) {
        op = anchor;
        grad = dyn_cast<nn::CrossEntropyGradOp>(user);
      } else {
        op = dyn_cast<nn::CrossEntropyOp>(user);
        grad = anchor;
      }
      if (op && grad && pairs(op, grad))
        break;
      op = {};
      grad = {};
    }
    if (!op)
      return failure();
    b.setInsertionPoint(op);
    Location loc = op.getLoc();
    Value logits = flattenLeading(b, loc, op.getLogits());
    Value targets = flattenAll(b, loc, op.getTargets());
    Value g = grad.getGrad();
    if (!availableAt(g, op)) // a constant: a copy of it here
      g = b.clone(*g.getDefiningOp())->getResult(0);
    auto [dx, rows] = buildRowCrossEntropyWithGrad(
        b, loc, logits, targets, g,
        1.0 / double(ty(op.getTargets()).getNumElements()), warps);
    Value loss = meanLoss(b, op, rows);
    Value dlogits = unflattenLeading(b, loc, dx, ty(op.getLogits()));
    b.replaceOp(grad, dlogits);
    b.replaceOp(op, loss);
    return success();
  }

  static bool pairs(nn::CrossEntropyOp op, nn::CrossEntropyGradOp grad) {
    return grad.getLogits() == op.getLogits() &&
           grad.getTargets() == op.getTargets() &&
           grad->getBlock() == op->getBlock() && isStatic(op) &&
           isStatic(grad) && rowKernelApplies(ty(op.getLogits())) &&
           ty(grad.getGrad()).getRank() == 0 &&
           (availableAt(grad.getGrad(), op) || isConstant(grad.getGrad()));
  }
  static bool isConstant(Value v) {
    Operation *def = v.getDefiningOp();
    return def && def->hasTrait<OpTrait::ConstantLike>();
  }
  /// Whether `v` is defined before `op` in its block, or is an argument of
  /// a block that contains it.
  static bool availableAt(Value v, Operation *op) {
    if (auto arg = dyn_cast<BlockArgument>(v))
      return arg.getOwner()->findAncestorOpInBlock(*op) != nullptr;
    Operation *def = v.getDefiningOp();
    return def->getBlock() == op->getBlock() && def->isBeforeInBlock(op);
  }
};

struct RowCrossEntropyGradLowering : StaticPattern<nn::CrossEntropyGradOp> {
  RowCrossEntropyGradLowering(MLIRContext *ctx, bool warps)
      : StaticPattern(ctx, kRowBenefit), warps(warps) {}
  bool warps;
  Value lower(nn::CrossEntropyGradOp op, PatternRewriter &b) const override {
    RankedTensorType lt = ty(op.getLogits()), tt = ty(op.getTargets());
    if (!rowKernelApplies(lt) || ty(op.getGrad()).getRank() != 0)
      return {};
    Location loc = op.getLoc();
    Value targets = flattenAll(b, loc, op.getTargets());
    Value dx = buildRowCrossEntropyGrad(b, loc, flattenLeading(b, loc, op.getLogits()),
                                        targets, op.getGrad(),
                                        1.0 / double(tt.getNumElements()),
                                        warps);
    return unflattenLeading(b, loc, dx, lt);
  }
};

/// The embedding gradient acc[idx[i], :] += g[i, :] as one loop per
/// (block of table rows, column): each walks all N indices in order and
/// adds the rows that fall in its block. The linalg-level lowering is one
/// loop per column over the N rows, whose read-modify-writes of the table
/// form a chain N long; here the table's V rows are split into P blocks
/// (P the largest divisor of V up to 65536 / D), so P times as many loops
/// each update about N / P rows, in the same order per element. `acc`
/// starts as `init` (zeros when null). Null when the table is not f32 or
/// V has no such divisor.
Value embeddingGradLoops(PatternRewriter &b, nn::EmbeddingGradOp op,
                         Value init) {
  RankedTensorType out = ty(op.getResult());
  if (!out.getElementType().isF32())
    return {};
  int64_t rows = out.getDimSize(0), dim = out.getDimSize(1), blocks = 1;
  for (int64_t p = 2; p <= rows && p * dim <= 65536; ++p)
    if (rows % p == 0)
      blocks = p;
  if (blocks == 1)
    return {};
  int64_t block = rows / blocks;
  Location loc = op.getLoc();
  Value g = flattenLeading(b, loc, op.getGrad()); // [N, D]
  Value idx = flattenAll(b, loc, op.getIndices());
  int64_t n = ty(g).getDimSize(0);

  auto forall = scf::ForallOp::create(
      b, loc,
      SmallVector<OpFoldResult>{b.getIndexAttr(blocks), b.getIndexAttr(dim)},
      ValueRange{init ? init : zeroFilled(b, loc, out)}, std::nullopt);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(forall.getTerminator());
  Value p = forall.getInductionVar(0), c = forall.getInductionVar(1);
  Value first = arith::MulIOp::create(
      b, loc, p, arith::ConstantIndexOp::create(b, loc, block));
  OpFoldResult one = b.getIndexAttr(1);
  SmallVector<OpFoldResult> offsets = {first, c},
                            sizes = {b.getIndexAttr(block), one},
                            strides = {one, one};
  auto sliceType = RankedTensorType::get({block, 1}, out.getElementType());
  Value slice = tensor::ExtractSliceOp::create(
      b, loc, sliceType, forall.getRegionIterArgs()[0], offsets, sizes,
      strides);
  Value zero = arith::ConstantIndexOp::create(b, loc, 0);
  Value blockSize = arith::ConstantIndexOp::create(b, loc, block);
  auto loop = scf::ForOp::create(
      b, loc, zero, arith::ConstantIndexOp::create(b, loc, n),
      arith::ConstantIndexOp::create(b, loc, 1), ValueRange{slice},
      [&](OpBuilder &nb, Location l, Value i, ValueRange iter) {
        Value t = arith::IndexCastOp::create(
            nb, l, nb.getIndexType(),
            tensor::ExtractOp::create(nb, l, idx, ValueRange{i}));
        // In this block (unsigned: rows before it wrap around).
        Value local = arith::SubIOp::create(nb, l, t, first);
        Value mine = arith::CmpIOp::create(nb, l, arith::CmpIPredicate::ult,
                                           local, blockSize);
        auto ifOp = scf::IfOp::create(
            nb, l, mine,
            [&](OpBuilder &tb, Location tl) {
              Value at[] = {local, zero};
              Value sum = arith::AddFOp::create(
                  tb, tl, tensor::ExtractOp::create(tb, tl, iter[0], at),
                  tensor::ExtractOp::create(tb, tl, g, ValueRange{i, c}));
              scf::YieldOp::create(
                  tb, tl,
                  tensor::InsertOp::create(tb, tl, sum, iter[0], at).getResult());
            },
            [&](OpBuilder &eb, Location el) {
              scf::YieldOp::create(eb, el, iter[0]);
            });
        scf::YieldOp::create(nb, l, ifOp.getResult(0));
      });
  b.setInsertionPointToStart(forall.getTerminator().getBody());
  tensor::ParallelInsertSliceOp::create(b, loc, loop.getResult(0),
                                        forall.getRegionIterArgs()[0], offsets,
                                        sizes, strides);
  return forall.getResult(0);
}

/// An embedding gradient on the GPU, by embeddingGradLoops.
struct RowEmbeddingGradLowering : StaticPattern<nn::EmbeddingGradOp> {
  RowEmbeddingGradLowering(MLIRContext *ctx) : StaticPattern(ctx, kRowBenefit) {}
  Value lower(nn::EmbeddingGradOp op, PatternRewriter &b) const override {
    if (addedInto(op))
      return {}; // RowEmbeddingGradSumLowering's
    return embeddingGradLoops(b, op, Value());
  }
  /// The nn.add that is `op`'s only use, when the other operand has the
  /// same type, so that the loops can add into it.
  static nn::AddOp addedInto(nn::EmbeddingGradOp op) {
    if (!op->hasOneUse())
      return {};
    auto add = dyn_cast<nn::AddOp>(*op->getUsers().begin());
    if (!add || add.getLhs() == add.getRhs() ||
        ty(add.getLhs()) != ty(add.getRhs()) ||
        ty(add.getResult()) != ty(add.getLhs()))
      return {};
    return add;
  }
};

/// An embedding gradient added to another gradient of its table (a tied
/// output head's): the loops add the rows into that gradient instead of
/// into zeros, so neither the zero-filled table nor the sum of two tables
/// goes through memory.
struct RowEmbeddingGradSumLowering : OpRewritePattern<nn::AddOp> {
  RowEmbeddingGradSumLowering(MLIRContext *ctx)
      : OpRewritePattern(ctx, kRowBenefit + 1) {}
  LogicalResult matchAndRewrite(nn::AddOp add,
                                PatternRewriter &b) const override {
    for (auto [mine, other] : {std::pair(add.getLhs(), add.getRhs()),
                               std::pair(add.getRhs(), add.getLhs())}) {
      auto grad = mine.getDefiningOp<nn::EmbeddingGradOp>();
      if (!grad || !isStatic(grad) ||
          RowEmbeddingGradLowering::addedInto(grad) != add)
        continue;
      Value sum = embeddingGradLoops(b, grad, other);
      if (!sum)
        return failure();
      b.replaceOp(add, sum);
      b.eraseOp(grad);
      return success();
    }
    return failure();
  }
};

/// The slice_grads (single use, unit strides) that a tree of single-use
/// nn.add ops rooted at `v` sums, all of `type`; empty if the tree has any
/// other leaf.
bool sliceGradLeaves(Value v, RankedTensorType type, bool root,
                     SmallVectorImpl<nn::SliceGradOp> &leaves) {
  Operation *def = v.getDefiningOp();
  if (!def || ty(v) != type || (!root && !v.hasOneUse()))
    return false;
  if (auto add = dyn_cast<nn::AddOp>(def))
    return sliceGradLeaves(add.getLhs(), type, false, leaves) &&
           sliceGradLeaves(add.getRhs(), type, false, leaves);
  auto grad = dyn_cast<nn::SliceGradOp>(def);
  if (!grad || llvm::any_of(grad.getStride(), [](int64_t s) { return s != 1; }))
    return false;
  leaves.push_back(grad);
  return true;
}

/// A sum of slice_grads of disjoint boxes - the gradient of a tensor that
/// was split, like attention's fused q/k/v projection - is each gradient
/// written into its box: no zero-filled full-size tensors and no adds of
/// them (for GPT-2's q/k/v, 5 passes over 8 x 1024 x 2304 floats become 3
/// copies of a third each). Zeros are filled only where the boxes leave a
/// part uncovered. Runs before the patterns, which would lower the
/// slice_grads one by one.
void lowerSliceGradSums(Operation *root) {
  SmallVector<nn::AddOp> adds;
  root->walk([&](nn::AddOp add) {
    // An add that feeds another add is part of that add's tree.
    if (!(add->hasOneUse() && isa<nn::AddOp>(*add->user_begin())))
      adds.push_back(add);
  });
  for (nn::AddOp add : adds) {
    RankedTensorType type = ty(add.getResult());
    SmallVector<nn::SliceGradOp> leaves;
    if (!type.hasStaticShape() ||
        !sliceGradLeaves(add.getResult(), type, true, leaves))
      continue;
    auto box = [](nn::SliceGradOp g, int64_t d) {
      return std::pair(g.getStart()[d], g.getStart()[d] + ty(g.getGrad()).getDimSize(d));
    };
    bool disjoint = true;
    int64_t covered = 0;
    for (auto [i, leaf] : llvm::enumerate(leaves)) {
      nn::SliceGradOp g = leaf; // captured below: not a structured binding
      covered += ty(g.getGrad()).getNumElements();
      for (nn::SliceGradOp h : ArrayRef(leaves).drop_front(i + 1))
        disjoint &= llvm::any_of(llvm::seq<int64_t>(0, type.getRank()),
                                 [&](int64_t d) {
                                   auto [a0, a1] = box(g, d);
                                   auto [b0, b1] = box(h, d);
                                   return a1 <= b0 || b1 <= a0;
                                 });
    }
    if (!disjoint)
      continue;
    PatternRewriter b(add.getContext());
    b.setInsertionPoint(add);
    Location loc = add.getLoc();
    Value sum = covered == type.getNumElements() ? emptyLike(b, loc, type)
                                                 : zeroFilled(b, loc, type);
    for (nn::SliceGradOp g : leaves)
      sum = insertSliceGrad(b, g, sum);
    // The tree goes, root first.
    SmallVector<Operation *> dead = {add};
    while (!dead.empty()) {
      Operation *op = dead.pop_back_val();
      SmallVector<Value> operands(op->getOperands());
      if (op == add)
        b.replaceOp(op, sum);
      else
        b.eraseOp(op);
      for (Value v : operands)
        if (Operation *def = v.getDefiningOp();
            def && def->use_empty() && isa<nn::AddOp, nn::SliceGradOp>(def))
          dead.push_back(def);
    }
  }
}

struct ConvertNNToLinalgPass
    : tessera::impl::ConvertNNToLinalgBase<ConvertNNToLinalgPass> {
  using ConvertNNToLinalgBase::ConvertNNToLinalgBase;
  void runOnOperation() override {
    lowerSliceGradSums(getOperation());
    RewritePatternSet patterns(&getContext());
    patterns.add<BinaryLowering<nn::AddOp>, BinaryLowering<nn::SubOp>,
                 BinaryLowering<nn::MulOp>, BinaryLowering<nn::DivOp>,
                 ReluLowering, GeluLowering, SiluLowering, TransposeLowering,
                 ReshapeLowering,
                 ReduceLowering<nn::ReduceSumOp, ReduceKind::Sum, false>,
                 ReduceLowering<nn::ReduceMeanOp, ReduceKind::Sum, true>,
                 ReduceLowering<nn::ReduceMaxOp, ReduceKind::Max, false>,
                 SoftmaxLowering, LayerNormLowering, RMSNormLowering,
                 EmbeddingLowering, ArangeLowering, SliceLowering,
                 ConcatLowering, CrossEntropyLowering, ReluGradLowering,
                 GeluGradLowering, SiluGradLowering, LayerNormGradLowering,
                 RMSNormGradLowering, EmbeddingGradLowering,
                 CrossEntropyGradLowering, SliceGradLowering>(&getContext());
    patterns.add<LinearLowering, MatmulLowering>(&getContext(), useBlas);
    patterns.add<AttentionLowering>(&getContext(), useBlas, flashAttention,
                                   mmaAttention);
    patterns.add<AttentionGradLowering>(&getContext(), flashAttention);
    if (rowKernels) {
      patterns.add<RowSoftmaxLowering, RowNormLowering<nn::LayerNormOp>,
                   RowNormLowering<nn::RMSNormOp>,
                   RowNormGradLowering<nn::LayerNormGradOp>,
                   RowNormGradLowering<nn::RMSNormGradOp>,
                   RowCrossEntropyLowering,
                   RowCrossEntropyWithGradLowering<nn::CrossEntropyOp>,
                   RowCrossEntropyWithGradLowering<nn::CrossEntropyGradOp>,
                   RowCrossEntropyGradLowering>(
          &getContext(), warpRows);
      patterns.add<RowEmbeddingGradLowering, RowEmbeddingGradSumLowering>(
          &getContext());
    }
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
