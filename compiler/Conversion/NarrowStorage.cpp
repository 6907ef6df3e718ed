//===- NarrowStorage.cpp - Store bf16/f16-exact f32 tensors in 16 bits ----===//
//
// Mixed precision rounds most activations and gradients to bf16 (or f16)
// and keeps computing in f32: `precision.round` lowers to
// `extf(truncf(x))` (and a reader of 16-bit bits yields `extf(bits)`), so
// the rounded tensor is an f32 tensor whose values
// all fit in 16 bits. Where fusion could not absorb such a tensor into its
// readers (it has several, as an activation read again by the backward
// pass does), it is written to and read from device memory at 4 bytes an
// element for 2 bytes of information.
//
// `tessera-narrow-storage` (on tensors, after element-wise fusion) stores
// those tensors as 16-bit ones: the element-wise producer yields the
// truncated value (bf16 bits in an f16-typed tensor, as the tensor-core
// operands do) and each reader extends it back in its own body. The values
// every op sees are unchanged, bit for bit; only storage narrows. A tensor
// is narrowed only when every reader is an element-wise or reduction
// `linalg.generic` (reached through expand/collapse_shape), since those
// take the extension into their loop body; returned tensors, attention and
// row-kernel operands and anything else keep f32.
//
// The half-precision twins that tensor-core selection built of a round's
// input then compute what the narrowed round computes; the pass keeps one
// of the two, and a second fusion pass folds the round's producer into it.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/Passes.h"
#include "compiler/Conversion/MmaUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;

namespace tessera {
#define GEN_PASS_DEF_NARROWSTORAGE
#include "compiler/Conversion/Passes.h.inc"

namespace {

/// The half-precision value `t` of `yielded = extf(t)`, t a bf16/f16 (a
/// rounding truncf(v), or bits read as bf16): the f32 value yielded is
/// exactly representable in t's type.
Value roundedHalf(Value yielded) {
  auto ext = yielded.getDefiningOp<arith::ExtFOp>();
  if (!ext || !ext.getType().isF32())
    return {};
  Value half = ext.getIn();
  if (!(half.getType().isBF16() || half.getType().isF16()))
    return {};
  return half;
}

/// True when every reader of `v`, through expand/collapse_shape, is an
/// input operand of a linalg.generic that is not an mma contraction.
bool readersTakeHalves(Value v) {
  for (OpOperand &use : v.getUses()) {
    Operation *user = use.getOwner();
    if (isa<tensor::ExpandShapeOp, tensor::CollapseShapeOp>(user)) {
      if (!readersTakeHalves(user->getResult(0)))
        return false;
      continue;
    }
    auto g = dyn_cast<linalg::GenericOp>(user);
    if (!g || g->hasAttr(kMmaAttr) || !g.isDpsInput(&use))
      return false;
  }
  return true;
}

RankedTensorType withElement(Type t, Type element) {
  auto rt = cast<RankedTensorType>(t);
  return RankedTensorType::get(rt.getShape(), element);
}

/// Makes every reader of `wide` (f32) read `narrow` (the same values as
/// f16-typed bits of `format`) instead, extending each element in its body.
void redirectReaders(OpBuilder &b, Value wide, Value narrow, Type format) {
  Type narrowElement = b.getF16Type();
  for (OpOperand &use : llvm::make_early_inc_range(wide.getUses())) {
    Operation *user = use.getOwner();
    b.setInsertionPoint(user);
    if (isa<tensor::ExpandShapeOp, tensor::CollapseShapeOp>(user)) {
      // The same reshape of the narrow tensor.
      Operation *reshape = b.clone(*user);
      reshape->setOperand(0, narrow);
      reshape->getResult(0).setType(
          withElement(user->getResult(0).getType(), narrowElement));
      redirectReaders(b, user->getResult(0), reshape->getResult(0), format);
      user->erase();
      continue;
    }
    auto g = cast<linalg::GenericOp>(user);
    BlockArgument arg = g.getMatchingBlockArgument(&use);
    use.set(narrow);
    arg.setType(b.getF16Type());
    b.setInsertionPointToStart(arg.getOwner());
    Value h = arg;
    if (format.isBF16())
      h = arith::BitcastOp::create(b, g.getLoc(), format, h);
    auto ext = arith::ExtFOp::create(b, g.getLoc(), b.getF32Type(), h);
    arg.replaceAllUsesExcept(ext.getResult(),
                             h == arg ? ext.getOperation() : h.getDefiningOp());
  }
}

/// Rebuilds `g` with result `i` stored as 16 bits when it holds rounded
/// values that every reader can extend; returns the generic now in place
/// of `g` (itself when nothing changed).
linalg::GenericOp narrowResult(linalg::GenericOp g, unsigned i) {
  Value result = g.getResult(i);
  auto type = dyn_cast<RankedTensorType>(result.getType());
  if (!type || !type.hasStaticShape() || !type.getElementType().isF32() ||
      result.use_empty())
    return g;
  Block *body = g.getBody();
  auto yield = cast<linalg::YieldOp>(body->getTerminator());
  Value half = roundedHalf(yield.getOperand(i));
  OpOperand *init = g.getDpsInitOperand(i);
  if (!half || !g.getMatchingBlockArgument(init).use_empty() ||
      !init->get().getDefiningOp<tensor::EmptyOp>() ||
      !readersTakeHalves(result))
    return g;

  OpBuilder b(g);
  Location loc = g.getLoc();
  auto narrowType = withElement(type, b.getF16Type());
  SmallVector<Value> inits(g.getDpsInits());
  inits[i] = tensor::EmptyOp::create(b, loc, type.getShape(), b.getF16Type());
  SmallVector<Type> types(g.getResultTypes());
  types[i] = narrowType;
  auto narrowed = linalg::GenericOp::create(
      b, loc, types, g.getDpsInputs(), inits, g.getIndexingMapsArray(),
      g.getIteratorTypesArray());
  narrowed->setDiscardableAttrs(g->getDiscardableAttrDictionary());
  narrowed.getRegion().takeBody(g.getRegion());
  narrowed.getMatchingBlockArgument(narrowed.getDpsInitOperand(i))
      .setType(b.getF16Type());
  b.setInsertionPoint(yield);
  Value bits = half;
  if (half.getType().isBF16())
    bits = arith::BitcastOp::create(b, loc, b.getF16Type(), half);
  Operation *ext = yield.getOperand(i).getDefiningOp();
  yield->setOperand(i, bits);
  if (ext->use_empty())
    ext->erase();

  for (unsigned r = 0; r < g.getNumResults(); ++r)
    if (r != i)
      g.getResult(r).replaceAllUsesWith(narrowed.getResult(r));
  redirectReaders(b, result, narrowed.getResult(i), half.getType());
  g.erase();
  return narrowed;
}

/// True when `a` and `b` compute the same thing: same operands (fresh
/// tensor.empty inits of one type count as the same), maps and body.
bool sameComputation(linalg::GenericOp a, linalg::GenericOp b) {
  if (a.getIndexingMapsArray() != b.getIndexingMapsArray() ||
      a.getIteratorTypesArray() != b.getIteratorTypesArray())
    return false;
  // Values of the two bodies found to correspond (block arguments, results).
  llvm::DenseMap<Value, Value> same;
  auto operandsMatch = [&](Value x, Value y) {
    if (x == y || same.lookup(x) == y)
      return success();
    auto ex = x.getDefiningOp<tensor::EmptyOp>();
    auto ey = y.getDefiningOp<tensor::EmptyOp>();
    return success(ex && ey && ex.getType() == ey.getType() &&
                   ex.getDynamicSizes().empty());
  };
  auto correspond = [&](Value x, Value y) { same[x] = y; };
  return OperationEquivalence::isEquivalentTo(
      a, b, operandsMatch, correspond,
      OperationEquivalence::IgnoreLocations);
}

/// After narrowing, a rounding and the half-precision twin that
/// tensor-core selection built of the same input compute the same bits.
/// Keeps the first of each such pair, so the input they read has one
/// reader left and fuses into it.
void mergeTwins(ArrayRef<linalg::GenericOp> narrowed) {
  llvm::DenseSet<Operation *> erased;
  for (linalg::GenericOp n : narrowed) {
    if (erased.contains(n) || n.getNumDpsInputs() == 0)
      continue;
    llvm::SetVector<Operation *> users(llvm::from_range,
                                       n.getDpsInputs()[0].getUsers());
    for (Operation *user : users) {
      auto other = dyn_cast<linalg::GenericOp>(user);
      if (!other || other == n || erased.contains(other) || other->getBlock() != n->getBlock() ||
          !sameComputation(n, other))
        continue;
      auto [first, second] = n->isBeforeInBlock(other)
                                 ? std::pair(n, other)
                                 : std::pair(other, n);
      second->replaceAllUsesWith(first->getResults());
      erased.insert(second);
      second.erase();
      if (second == n)
        break;
    }
  }
}

struct NarrowStoragePass : impl::NarrowStorageBase<NarrowStoragePass> {
  void runOnOperation() override {
    SmallVector<linalg::GenericOp> candidates;
    getOperation().walk([&](linalg::GenericOp g) {
      if (!g->hasAttr(kMmaAttr) && g.getNumParallelLoops() == g.getNumLoops())
        candidates.push_back(g);
    });
    SmallVector<linalg::GenericOp> narrowed;
    for (linalg::GenericOp g : candidates) {
      linalg::GenericOp original = g;
      for (unsigned i = 0; i < g.getNumResults(); ++i)
        g = narrowResult(g, i);
      if (g != original)
        narrowed.push_back(g);
    }
    mergeTwins(narrowed);
  }
};

} // namespace
} // namespace tessera
