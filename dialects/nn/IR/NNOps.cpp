//===- NNOps.cpp - Verifiers and folds of the nn dialect ------------------===//
//
// Verifiers accept dynamic dimensions (`?`) wherever a static one would
// match, and name both sides of every mismatch.
//
//===----------------------------------------------------------------------===//

#include "dialects/nn/IR/NNDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Diagnostics.h"

#include "llvm/ADT/STLExtras.h"

using namespace mlir;
using namespace tessera::nn;

#include "dialects/nn/IR/NNDialect.cpp.inc"
#include "dialects/nn/IR/NNInterfaces.cpp.inc"

void NNDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "dialects/nn/IR/NNOps.cpp.inc"
      >();
}

namespace {

RankedTensorType ty(Value v) { return cast<RankedTensorType>(v.getType()); }

bool dimsMatch(int64_t a, int64_t b) {
  return a == b || ShapedType::isDynamic(a) || ShapedType::isDynamic(b);
}

bool shapesMatch(ArrayRef<int64_t> a, ArrayRef<int64_t> b) {
  return a.size() == b.size() &&
         llvm::all_of(llvm::zip(a, b), [](auto p) {
           return dimsMatch(std::get<0>(p), std::get<1>(p));
         });
}

/// NumPy broadcasting; fails when two static dimensions differ and neither
/// is 1.
FailureOr<SmallVector<int64_t>> broadcast(ArrayRef<int64_t> a,
                                          ArrayRef<int64_t> b) {
  size_t n = std::max(a.size(), b.size());
  SmallVector<int64_t> out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da == 1)
      out[i] = db;
    else if (db == 1 || da == db)
      out[i] = da;
    else if (ShapedType::isDynamic(da) || ShapedType::isDynamic(db))
      out[i] = ShapedType::isDynamic(da) ? db : da;
    else
      return failure();
  }
  return out;
}

/// Normalizes a possibly negative dimension.
FailureOr<int64_t> normDim(Operation *op, int64_t d, int64_t rank,
                           StringRef what) {
  if (d < -rank || d >= rank)
    return op->emitOpError() << what << " " << d
                             << " is out of range for rank " << rank;
  return d < 0 ? d + rank : d;
}

LogicalResult expectResult(Operation *op, RankedTensorType result,
                           ArrayRef<int64_t> shape, Type elementType) {
  if (result.getElementType() != elementType)
    return op->emitOpError() << "result element type "
                             << result.getElementType() << " should be "
                             << elementType;
  if (!shapesMatch(result.getShape(), shape)) {
    std::string expected;
    llvm::raw_string_ostream os(expected);
    llvm::interleave(
        shape, os,
        [&](int64_t d) {
          if (ShapedType::isDynamic(d))
            os << "?";
          else
            os << d;
        },
        "x");
    return op->emitOpError() << "result type " << result
                             << " does not match the inferred shape ["
                             << expected << "]";
  }
  return success();
}

LogicalResult verifyTrailing(Operation *op, RankedTensorType x,
                             RankedTensorType p, StringRef what) {
  if (p.getRank() > x.getRank() ||
      !shapesMatch(p.getShape(),
                   x.getShape().take_back(p.getRank())) ||
      p.getElementType() != x.getElementType())
    return op->emitOpError() << what << " " << p
                             << " does not match the trailing dimensions of "
                             << x;
  return success();
}

LogicalResult verifyFloat(Operation *op, RankedTensorType t, StringRef what) {
  if (!isa<FloatType>(t.getElementType()))
    return op->emitOpError() << what << " must have a floating-point element "
                             << "type, got " << t;
  return success();
}

template <typename OpT> LogicalResult verifyBinary(OpT op) {
  RankedTensorType l = ty(op.getLhs()), r = ty(op.getRhs());
  if (l.getElementType() != r.getElementType())
    return op.emitOpError() << "operands have different element types: " << l
                            << " and " << r;
  auto shape = broadcast(l.getShape(), r.getShape());
  if (failed(shape))
    return op.emitOpError() << "cannot broadcast " << l << " and " << r;
  return expectResult(op, ty(op.getResult()), *shape, l.getElementType());
}

template <typename OpT> LogicalResult verifyReduce(OpT op) {
  RankedTensorType in = ty(op.getInput());
  SmallVector<int64_t> shape;
  if (!op.getDim()) {
    if (op.getKeepdim())
      shape.assign(in.getRank(), 1);
  } else {
    auto d = normDim(op, *op.getDim(), in.getRank(), "dim");
    if (failed(d))
      return failure();
    for (int64_t i = 0; i < in.getRank(); ++i) {
      if (i != *d)
        shape.push_back(in.getDimSize(i));
      else if (op.getKeepdim())
        shape.push_back(1);
    }
  }
  return expectResult(op, ty(op.getResult()), shape, in.getElementType());
}

} // namespace

#define UNARY_VERIFIER(OpT)                                                    \
  LogicalResult OpT::verify() {                                                \
    return verifyFloat(*this, ty(getInput()), "input");                        \
  }
UNARY_VERIFIER(ReluOp)
UNARY_VERIFIER(GeluOp)
UNARY_VERIFIER(SiluOp)
#undef UNARY_VERIFIER

LogicalResult AddOp::verify() { return verifyBinary(*this); }
LogicalResult SubOp::verify() { return verifyBinary(*this); }
LogicalResult MulOp::verify() { return verifyBinary(*this); }
LogicalResult DivOp::verify() { return verifyBinary(*this); }

LogicalResult SoftmaxOp::verify() {
  RankedTensorType t = ty(getInput());
  if (failed(verifyFloat(*this, t, "input")))
    return failure();
  if (t.getRank() == 0)
    return emitOpError("needs a tensor of rank >= 1");
  return normDim(*this, getDim(), t.getRank(), "dim");
}

LogicalResult LinearOp::verify() {
  RankedTensorType x = ty(getInput()), w = ty(getWeight());
  if (w.getRank() != 2)
    return emitOpError() << "weight must be a matrix [out, in], got " << w;
  if (x.getRank() < 1 || !dimsMatch(x.getShape().back(), w.getDimSize(1)))
    return emitOpError() << "input " << x << " does not match weight " << w
                         << ": the last input dimension must equal in";
  if (x.getElementType() != w.getElementType())
    return emitOpError() << "input " << x << " and weight " << w
                         << " have different element types";
  if (Value b = getBias()) {
    RankedTensorType bt = ty(b);
    if (bt.getRank() != 1 || !dimsMatch(bt.getDimSize(0), w.getDimSize(0)) ||
        bt.getElementType() != w.getElementType())
      return emitOpError() << "bias " << bt << " does not match weight " << w;
  }
  SmallVector<int64_t> shape(x.getShape());
  shape.back() = w.getDimSize(0);
  return expectResult(*this, ty(getResult()), shape, x.getElementType());
}

LogicalResult MatmulOp::verify() {
  RankedTensorType a = ty(getLhs()), b = ty(getRhs());
  if (a.getRank() < 2 || b.getRank() < 2)
    return emitOpError() << "needs operands of rank >= 2, got " << a << " and "
                         << b;
  if (a.getElementType() != b.getElementType())
    return emitOpError() << "operands have different element types: " << a
                         << " and " << b;
  if (!dimsMatch(a.getShape().back(), b.getDimSize(b.getRank() - 2)))
    return emitOpError() << "contraction dimensions differ: " << a << " and "
                         << b;
  auto batch = broadcast(a.getShape().drop_back(2), b.getShape().drop_back(2));
  if (failed(batch))
    return emitOpError() << "batch dimensions of " << a << " and " << b
                         << " do not broadcast";
  SmallVector<int64_t> shape(*batch);
  shape.push_back(a.getDimSize(a.getRank() - 2));
  shape.push_back(b.getShape().back());
  return expectResult(*this, ty(getResult()), shape, a.getElementType());
}

LogicalResult LayerNormOp::verify() {
  RankedTensorType x = ty(getInput());
  if (failed(verifyFloat(*this, x, "input")) ||
      failed(verifyTrailing(*this, x, ty(getWeight()), "weight")) ||
      failed(verifyTrailing(*this, x, ty(getBias()), "bias")))
    return failure();
  if (!(getEps().convertToDouble() > 0))
    return emitOpError("eps must be positive");
  return expectResult(*this, ty(getResult()), x.getShape(), x.getElementType());
}

LogicalResult RMSNormOp::verify() {
  RankedTensorType x = ty(getInput());
  if (failed(verifyFloat(*this, x, "input")) ||
      failed(verifyTrailing(*this, x, ty(getWeight()), "weight")))
    return failure();
  if (!(getEps().convertToDouble() > 0))
    return emitOpError("eps must be positive");
  return expectResult(*this, ty(getResult()), x.getShape(), x.getElementType());
}

LogicalResult EmbeddingOp::verify() {
  RankedTensorType w = ty(getWeight()), idx = ty(getIndices());
  if (w.getRank() != 2)
    return emitOpError() << "weight must be a table [num, dim], got " << w;
  if (!isa<IntegerType>(idx.getElementType()))
    return emitOpError() << "indices must be integers, got " << idx;
  SmallVector<int64_t> shape(idx.getShape());
  shape.push_back(w.getDimSize(1));
  return expectResult(*this, ty(getResult()), shape, w.getElementType());
}

LogicalResult AttentionOp::verify() {
  RankedTensorType q = ty(getQuery()), k = ty(getKey()), v = ty(getValue());
  int64_t r = q.getRank();
  if (r < 2 || k.getRank() != r || v.getRank() != r)
    return emitOpError() << "query, key and value must share a rank >= 2, got "
                         << q << ", " << k << ", " << v;
  if (failed(verifyFloat(*this, q, "query")))
    return failure();
  if (q.getElementType() != k.getElementType() ||
      q.getElementType() != v.getElementType())
    return emitOpError("query, key and value must share an element type");
  if (!shapesMatch(q.getShape().drop_back(2), k.getShape().drop_back(2)) ||
      !shapesMatch(q.getShape().drop_back(2), v.getShape().drop_back(2)))
    return emitOpError() << "batch dimensions of " << q << ", " << k << " and "
                         << v << " differ";
  if (!dimsMatch(q.getDimSize(r - 1), k.getDimSize(r - 1)))
    return emitOpError() << "query " << q << " and key " << k
                         << " differ in the head dimension";
  if (!dimsMatch(k.getDimSize(r - 2), v.getDimSize(r - 2)))
    return emitOpError() << "key " << k << " and value " << v
                         << " differ in the sequence dimension";
  if (getCausal() && !dimsMatch(q.getDimSize(r - 2), k.getDimSize(r - 2)))
    return emitOpError("causal attention needs as many queries as keys");
  if (auto s = getScale(); s && !(s->convertToDouble() > 0))
    return emitOpError("scale must be positive");
  SmallVector<int64_t> shape(q.getShape());
  shape.back() = v.getShape().back();
  return expectResult(*this, ty(getResult()), shape, q.getElementType());
}

LogicalResult AttentionGradOp::verify() {
  auto q = ty(getQuery()), k = ty(getKey()), v = ty(getValue());
  if (ty(getGrad()) != ty(getOut()))
    return emitOpError() << "grad " << ty(getGrad())
                         << " must have the type of out " << ty(getOut());
  if (ty(getQueryGrad()) != q || ty(getKeyGrad()) != k || ty(getValueGrad()) != v)
    return emitOpError("gradients must have the types of query, key and value");
  if (getCausal() && !dimsMatch(q.getDimSize(q.getRank() - 2),
                                k.getDimSize(k.getRank() - 2)))
    return emitOpError("causal attention needs as many queries as keys");
  return success();
}

LogicalResult CrossEntropyOp::verify() {
  RankedTensorType l = ty(getLogits()), t = ty(getTargets());
  if (failed(verifyFloat(*this, l, "logits")))
    return failure();
  if (!isa<IntegerType>(t.getElementType()))
    return emitOpError() << "targets must be integer class indices, got " << t;
  if (l.getRank() < 1 || !shapesMatch(l.getShape().drop_back(), t.getShape()))
    return emitOpError() << "logits " << l << " and targets " << t
                         << " do not match: targets have the logits' shape "
                            "without the class dimension";
  return expectResult(*this, ty(getResult()), {}, l.getElementType());
}

LogicalResult ReshapeOp::verify() {
  RankedTensorType in = ty(getInput()), out = ty(getResult());
  if (in.getElementType() != out.getElementType())
    return emitOpError("cannot change the element type");
  if (in.hasStaticShape() && out.hasStaticShape() &&
      in.getNumElements() != out.getNumElements())
    return emitOpError() << "cannot reshape " << in << " ("
                         << in.getNumElements() << " elements) to " << out
                         << " (" << out.getNumElements() << " elements)";
  return success();
}

OpFoldResult ReshapeOp::fold(FoldAdaptor) {
  // reshape(x : T) -> T is x.
  if (getInput().getType() == getResult().getType())
    return getInput();
  // reshape(reshape(x)) -> reshape(x): fold to x when the types round-trip.
  if (auto inner = getInput().getDefiningOp<ReshapeOp>())
    if (inner.getInput().getType() == getResult().getType())
      return inner.getInput();
  return {};
}

LogicalResult TransposeOp::verify() {
  RankedTensorType in = ty(getInput());
  auto d0 = normDim(*this, getDim0(), in.getRank(), "dim0");
  auto d1 = normDim(*this, getDim1(), in.getRank(), "dim1");
  if (failed(d0) || failed(d1))
    return failure();
  SmallVector<int64_t> shape(in.getShape());
  std::swap(shape[*d0], shape[*d1]);
  return expectResult(*this, ty(getResult()), shape, in.getElementType());
}

OpFoldResult TransposeOp::fold(FoldAdaptor) {
  int64_t rank = ty(getInput()).getRank();
  auto norm = [&](int64_t d) { return d < 0 ? d + rank : d; };
  // Swapping a dimension with itself is the identity.
  if (norm(getDim0()) == norm(getDim1()))
    return getInput();
  // transpose(transpose(x, a, b), a, b) -> x.
  if (auto inner = getInput().getDefiningOp<TransposeOp>()) {
    auto pair = [&](TransposeOp t) {
      int64_t a = norm(t.getDim0()), b = norm(t.getDim1());
      return std::make_pair(std::min(a, b), std::max(a, b));
    };
    if (pair(inner) == pair(*this))
      return inner.getInput();
  }
  return {};
}

LogicalResult ReduceSumOp::verify() { return verifyReduce(*this); }
LogicalResult ReduceMeanOp::verify() { return verifyReduce(*this); }
LogicalResult ReduceMaxOp::verify() { return verifyReduce(*this); }

LogicalResult ConcatOp::verify() {
  if (getInputs().empty())
    return emitOpError("needs at least one input");
  RankedTensorType first = ty(getInputs()[0]);
  auto d = normDim(*this, getDim(), first.getRank(), "dim");
  if (failed(d))
    return failure();
  SmallVector<int64_t> shape(first.getShape());
  for (Value v : getInputs().drop_front()) {
    RankedTensorType t = ty(v);
    bool ok = t.getRank() == first.getRank() &&
              t.getElementType() == first.getElementType();
    for (int64_t i = 0; ok && i < t.getRank(); ++i)
      ok = i == *d || dimsMatch(t.getDimSize(i), first.getDimSize(i));
    if (!ok)
      return emitOpError() << "cannot concatenate " << first << " and " << t
                           << " along dimension " << *d;
    shape[*d] = ShapedType::isDynamic(shape[*d]) ||
                        ShapedType::isDynamic(t.getDimSize(*d))
                    ? ShapedType::kDynamic
                    : shape[*d] + t.getDimSize(*d);
  }
  return expectResult(*this, ty(getResult()), shape, first.getElementType());
}

LogicalResult SliceOp::verify() {
  RankedTensorType in = ty(getInput());
  int64_t r = in.getRank();
  if (int64_t(getStart().size()) != r || int64_t(getLimit().size()) != r ||
      int64_t(getStride().size()) != r)
    return emitOpError() << "start, limit and stride need " << r
                         << " entries each";
  SmallVector<int64_t> shape;
  for (int64_t i = 0; i < r; ++i) {
    int64_t lo = getStart()[i], hi = getLimit()[i], st = getStride()[i];
    int64_t size = in.getDimSize(i);
    if (st <= 0)
      return emitOpError() << "stride " << st << " must be positive";
    if (lo < 0 || hi < lo || (!ShapedType::isDynamic(size) && hi > size))
      return emitOpError() << "slice [" << lo << ", " << hi
                           << ") is out of range for dimension " << i
                           << " of " << in;
    shape.push_back((hi - lo + st - 1) / st);
  }
  return expectResult(*this, ty(getResult()), shape, in.getElementType());
}

LogicalResult ArangeOp::verify() {
  RankedTensorType t = ty(getResult());
  if (t.getRank() != 1 || !isa<IntegerType>(t.getElementType()))
    return emitOpError() << "result must be a 1-D integer tensor, got " << t;
  return success();
}

#define GET_OP_CLASSES
#include "dialects/nn/IR/NNOps.cpp.inc"
