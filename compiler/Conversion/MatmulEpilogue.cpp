//===- MatmulEpilogue.cpp - Element-wise consumers in a matmul kernel -----===//

#include "compiler/Conversion/MatmulEpilogue.h"

#include "mlir/Dialect/Affine/Utils.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

using namespace mlir;

namespace tessera {
namespace {

/// The buffer a memref value is a view of.
Value rootBuffer(Value v) {
  while (auto view = v.getDefiningOp<ViewLikeOpInterface>())
    v = view.getViewSource();
  return v;
}

/// Whether nothing strictly between `from` and `to` (same block) writes or
/// frees one of `guarded` (root buffers). Ops whose effects are unknown
/// count as writing everything.
bool noWritesBetween(Operation *from, Operation *to, ArrayRef<Value> guarded) {
  for (Operation *op = from->getNextNode(); op != to; op = op->getNextNode()) {
    if (isa<memref::AllocOp>(op) || isMemoryEffectFree(op))
      continue;
    std::optional<SmallVector<MemoryEffects::EffectInstance>> effects =
        getEffectsRecursively(op);
    if (!effects)
      return false;
    for (const MemoryEffects::EffectInstance &e : *effects) {
      if (isa<MemoryEffects::Read, MemoryEffects::Allocate>(e.getEffect()))
        continue;
      Value written = e.getValue();
      if (!written || llvm::is_contained(guarded, rootBuffer(written)))
        return false;
    }
  }
  return true;
}

} // namespace

std::optional<MatmulEpilogue> MatmulEpilogue::find(linalg::GenericOp matmul) {
  Value c = matmul.getDpsInits()[0];
  if (!c.getDefiningOp<memref::AllocOp>())
    return std::nullopt;
  Block *block = matmul->getBlock();

  // C's one reader: the consumer, directly or through an expand_shape.
  Value view;
  Operation *reader = nullptr;
  for (Operation *user : c.getUsers()) {
    if (user == matmul || isa<memref::DeallocOp>(user))
      continue;
    if (auto fill = dyn_cast<linalg::FillOp>(user)) {
      if (fill->getBlock() == block && fill->isBeforeInBlock(matmul))
        continue;
      return std::nullopt;
    }
    Value seen = c;
    Operation *reads = user;
    if (auto expand = dyn_cast<memref::ExpandShapeOp>(user)) {
      seen = expand.getResult();
      if (!seen.hasOneUse())
        return std::nullopt;
      reads = *seen.getUsers().begin();
    }
    if ((view && view != seen) || (reader && reader != reads))
      return std::nullopt;
    view = seen;
    reader = reads;
  }
  auto consumer = dyn_cast_or_null<linalg::GenericOp>(reader);
  if (!consumer || consumer->getBlock() != block ||
      !matmul->isBeforeInBlock(consumer) ||
      !consumer.hasPureBufferSemantics() ||
      !llvm::all_of(consumer.getIteratorTypesArray(),
                    [](utils::IteratorType t) {
                      return t == utils::IteratorType::parallel;
                    }))
    return std::nullopt;
  auto viewType = cast<MemRefType>(view.getType());
  if (!viewType.hasStaticShape() ||
      consumer.getNumLoops() != unsigned(viewType.getRank()))
    return std::nullopt;
  for (OpOperand &operand : consumer->getOpOperands()) {
    auto type = dyn_cast<MemRefType>(operand.get().getType());
    if (!type || !type.hasStaticShape())
      return std::nullopt;
    if (operand.get() == view &&
        (consumer.isDpsInit(&operand) ||
         !consumer.getMatchingIndexingMap(&operand).isIdentity()))
      return std::nullopt;
    if (consumer.isDpsInit(&operand) && rootBuffer(operand.get()) == c)
      return std::nullopt;
  }
  // linalg.index is mapped in the body's top level only.
  Block &body = consumer.getRegion().front();
  bool nestedIndex = false;
  body.walk([&](linalg::IndexOp index) {
    nestedIndex |= index->getBlock() != &body;
  });
  if (nestedIndex)
    return std::nullopt;

  // The kernel runs where the consumer is: nothing in between may change
  // what the matmul reads (or touch C).
  SmallVector<Value> guarded = {rootBuffer(matmul.getDpsInputs()[0]),
                                rootBuffer(matmul.getDpsInputs()[1]), c};
  if (!noWritesBetween(matmul, consumer, guarded))
    return std::nullopt;

  MatmulEpilogue e;
  e.consumer = consumer;
  e.view = view;
  auto cType = cast<MemRefType>(c.getType());
  if (view == c) {
    e.groups = {{cType.getDimSize(0)}, {cType.getDimSize(1)}};
  } else {
    auto expand = view.getDefiningOp<memref::ExpandShapeOp>();
    for (const ReassociationIndices &group : expand.getReassociationIndices()) {
      SmallVector<int64_t> sizes;
      for (int64_t d : group)
        sizes.push_back(viewType.getDimSize(d));
      e.groups.push_back(sizes);
    }
  }
  return e;
}

void MatmulEpilogue::emitPair(OpBuilder &b, Location loc, Value row,
                              Value col, Value pair0, Value pair1) {
  auto index = [&](int64_t v) {
    return arith::ConstantIndexOp::create(b, loc, v);
  };
  // The consumer's indices of C[row, col + j]: row and column delinearized
  // over the dimensions they expand to.
  auto delinearize = [&](Value x, ArrayRef<int64_t> sizes,
                         SmallVectorImpl<Value> &out) {
    SmallVector<Value> inner;
    for (int64_t d = sizes.size() - 1; d > 0; --d) {
      inner.push_back(arith::RemUIOp::create(b, loc, x, index(sizes[d])));
      x = arith::DivUIOp::create(b, loc, x, index(sizes[d]));
    }
    out.push_back(x);
    out.append(inner.rbegin(), inner.rend());
  };
  SmallVector<Value> ivs[2];
  for (int j = 0; j < 2; ++j) {
    delinearize(row, groups[0], ivs[j]);
    delinearize(j ? arith::AddIOp::create(b, loc, col, index(1)).getResult()
                  : col,
                groups[1], ivs[j]);
  }
  unsigned last = consumer.getNumLoops() - 1;
  // An even innermost dimension keeps the pair in one row of it: operands
  // indexed by that dimension last, with unit stride and an even row, hold
  // the pair in two aligned consecutive elements.
  auto paired = [&](OpOperand &operand) {
    auto type = cast<MemRefType>(operand.get().getType());
    AffineMap map = consumer.getMatchingIndexingMap(&operand);
    if (groups[1].back() % 2 || !type.getLayout().isIdentity() ||
        type.getRank() == 0 || type.getShape().back() % 2 ||
        !type.getElementType().isIntOrFloat() ||
        type.getElementTypeBitWidth() % 8 || map.getNumResults() == 0 ||
        map.getResults().back() != getAffineDimExpr(last, b.getContext()))
      return false;
    return llvm::none_of(map.getResults().drop_back(), [&](AffineExpr r) {
      return r.isFunctionOfDim(last);
    });
  };
  auto indices = [&](OpOperand &operand, int j) {
    return *affine::expandAffineMap(
        b, loc, consumer.getMatchingIndexingMap(&operand), ivs[j]);
  };
  auto pairType = [](OpOperand &operand) {
    return VectorType::get(
        {2}, cast<MemRefType>(operand.get().getType()).getElementType());
  };
  auto alignment = [](OpOperand &operand) {
    return llvm::MaybeAlign(
        cast<MemRefType>(operand.get().getType()).getElementTypeBitWidth() /
        4);
  };

  // The body's arguments for each element of the pair.
  Block &body = consumer.getRegion().front();
  SmallVector<Value> args[2];
  for (OpOperand &operand : consumer->getOpOperands()) {
    Value buffer = operand.get();
    BlockArgument arg = consumer.getMatchingBlockArgument(&operand);
    if (buffer == view) {
      args[0].push_back(pair0);
      args[1].push_back(pair1);
    } else if (consumer.isDpsInit(&operand) && arg.use_empty()) {
      args[0].push_back({});
      args[1].push_back({});
    } else if (paired(operand)) {
      Value both =
          vector::LoadOp::create(b, loc, pairType(operand), buffer,
                                 indices(operand, 0), false,
                                 alignment(operand));
      for (int j = 0; j < 2; ++j)
        args[j].push_back(vector::ExtractOp::create(b, loc, both, j));
    } else {
      for (int j = 0; j < 2; ++j)
        args[j].push_back(
            memref::LoadOp::create(b, loc, buffer, indices(operand, j)));
    }
  }
  SmallVector<Value> results[2];
  for (int j = 0; j < 2; ++j) {
    IRMapping mapping;
    for (auto [arg, value] : llvm::zip(body.getArguments(), args[j]))
      if (value)
        mapping.map(arg, value);
    for (Operation &op : body.without_terminator()) {
      if (auto index = dyn_cast<linalg::IndexOp>(op)) {
        mapping.map(index.getResult(), ivs[j][index.getDim()]);
        continue;
      }
      b.clone(op, mapping);
    }
    for (Value yielded : body.getTerminator()->getOperands())
      results[j].push_back(mapping.lookupOrDefault(yielded));
  }
  for (auto [k, operand] : llvm::enumerate(consumer.getDpsInitsMutable())) {
    if (paired(operand)) {
      Value both = vector::FromElementsOp::create(
          b, loc, pairType(operand), ValueRange{results[0][k], results[1][k]});
      vector::StoreOp::create(b, loc, both, operand.get(), indices(operand, 0),
                              false, alignment(operand));
      continue;
    }
    for (int j = 0; j < 2; ++j)
      memref::StoreOp::create(b, loc, results[j][k], operand.get(),
                              indices(operand, j));
  }
}

void MatmulEpilogue::eraseConsumer() {
  consumer.erase();
  if (auto expand = view.getDefiningOp<memref::ExpandShapeOp>())
    if (expand->use_empty())
      expand.erase();
}

void MatmulEpilogue::eraseIfUnused(Value c) {
  auto alloc = c.getDefiningOp<memref::AllocOp>();
  if (!alloc || !llvm::all_of(c.getUsers(), [](Operation *user) {
        return isa<memref::DeallocOp>(user);
      }))
    return;
  for (Operation *user : llvm::make_early_inc_range(c.getUsers()))
    user->erase();
  alloc.erase();
}

} // namespace tessera
