//===- ConsumerEpilogue.cpp - Element-wise consumers in a matmul kernel -----===//

#include "compiler/Conversion/ConsumerEpilogue.h"

#include "mlir/Dialect/Affine/Utils.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

using namespace mlir;

namespace tessera {

Value rootBuffer(Value v) {
  while (auto view = v.getDefiningOp<ViewLikeOpInterface>())
    v = view.getViewSource();
  return v;
}

bool untouchedBetween(Operation *from, Operation *to, ArrayRef<Value> noWrite,
                      ArrayRef<Value> noAccess) {
  for (Operation *op = from->getNextNode(); op != to; op = op->getNextNode()) {
    if (isa<memref::AllocOp>(op) || isMemoryEffectFree(op))
      continue;
    std::optional<SmallVector<MemoryEffects::EffectInstance>> effects =
        getEffectsRecursively(op);
    if (!effects)
      return false;
    for (const MemoryEffects::EffectInstance &e : *effects) {
      if (isa<MemoryEffects::Allocate>(e.getEffect()))
        continue;
      bool read = isa<MemoryEffects::Read>(e.getEffect());
      Value v = e.getValue();
      if (!v) {
        if (read && noAccess.empty())
          continue;
        return false;
      }
      Value root = rootBuffer(v);
      if (llvm::is_contained(noAccess, root) ||
          (!read && llvm::is_contained(noWrite, root)))
        return false;
    }
  }
  return true;
}

std::optional<ConsumerEpilogue>
ConsumerEpilogue::find(Operation *producer, Value c, ArrayRef<Value> reads,
                       Place place) {
  auto cType = dyn_cast<MemRefType>(c.getType());
  if (!c.getDefiningOp<memref::AllocOp>() || !cType || cType.getRank() != 2 ||
      !cType.hasStaticShape())
    return std::nullopt;
  Block *block = producer->getBlock();

  // C's readers, each directly or through an expand_shape.
  SmallVector<std::pair<Value, Operation *>> readers;
  for (Operation *user : c.getUsers()) {
    if (producer->isAncestor(user) || isa<memref::DeallocOp>(user))
      continue;
    if (auto fill = dyn_cast<linalg::FillOp>(user)) {
      if (fill->getBlock() == block && fill->isBeforeInBlock(producer))
        continue;
      return std::nullopt;
    }
    if (auto expand = dyn_cast<memref::ExpandShapeOp>(user)) {
      for (Operation *reader : expand.getResult().getUsers())
        readers.push_back({expand.getResult(), reader});
      continue;
    }
    readers.push_back({c, user});
  }
  // One reader: the consumer. With more (Place::Producer only), the first
  // that can be the consumer is, and C is still stored for the others.
  if (readers.size() == 1)
    return find(producer, c, reads, place, readers[0].first,
                readers[0].second, /*storesC=*/false);
  if (place != Place::Producer)
    return std::nullopt;
  for (auto [view, reader] : readers)
    if (auto e = find(producer, c, reads, place, view, reader,
                      /*storesC=*/true))
      return e;
  return std::nullopt;
}

std::optional<ConsumerEpilogue>
ConsumerEpilogue::find(Operation *producer, Value c, ArrayRef<Value> reads,
                       Place place, Value view, Operation *reader,
                       bool storesC) {
  auto cType = cast<MemRefType>(c.getType());
  Block *block = producer->getBlock();
  auto consumer = dyn_cast_or_null<linalg::GenericOp>(reader);
  if (!consumer || consumer->getBlock() != block ||
      !producer->isBeforeInBlock(consumer) ||
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
  SmallVector<Value> inputRoots, outputRoots;
  for (OpOperand &operand : consumer->getOpOperands()) {
    auto type = dyn_cast<MemRefType>(operand.get().getType());
    if (!type || !type.hasStaticShape())
      return std::nullopt;
    bool init = consumer.isDpsInit(&operand);
    if (operand.get() == view) {
      if (init || !consumer.getMatchingIndexingMap(&operand).isIdentity())
        return std::nullopt;
      continue;
    }
    Value root = rootBuffer(operand.get());
    if (root == c)
      return std::nullopt;
    (init ? outputRoots : inputRoots).push_back(root);
    // Moving up: the operand must be there already, or be an allocation
    // of an output that can move up too.
    Operation *def = operand.get().getDefiningOp();
    if (place == Place::Producer && def && def->getBlock() == block &&
        producer->isBeforeInBlock(def) &&
        !(init && isa<memref::AllocOp>(def) && def->getNumOperands() == 0))
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

  // The consumer reads nothing else the producer writes (in the epilogue,
  // the producer's other writes may not have happened yet).
  std::optional<SmallVector<MemoryEffects::EffectInstance>> produced =
      getEffectsRecursively(producer);
  if (!produced)
    return std::nullopt;
  for (const MemoryEffects::EffectInstance &e : *produced)
    if (isa<MemoryEffects::Write>(e.getEffect()) &&
        (!e.getValue() ||
         llvm::is_contained(inputRoots, rootBuffer(e.getValue()))))
      return std::nullopt;

  if (place == Place::Consumer) {
    // The producer runs later: nothing in between may change what it
    // reads (or touch C).
    SmallVector<Value> guarded = {c};
    for (Value v : reads)
      guarded.push_back(rootBuffer(v));
    if (!untouchedBetween(producer, consumer, guarded, {}))
      return std::nullopt;
  } else {
    // The consumer runs earlier: nothing in between may change what it
    // reads (C included), or touch what it writes.
    SmallVector<Value> guarded = inputRoots;
    guarded.push_back(c);
    if (!untouchedBetween(producer, consumer, guarded, outputRoots))
      return std::nullopt;
  }

  ConsumerEpilogue e;
  e.consumer = consumer;
  e.view = view;
  e.keepsC = storesC;
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

std::optional<ConsumerEpilogue>
ConsumerEpilogue::findAbsorbing(Operation *producer, Value c,
                                ArrayRef<Value> reads, Place place,
                                function_ref<bool(Operation *)> keep) {
  std::optional<ConsumerEpilogue> e = find(producer, c, reads, place);
  if (!e || (keep && keep(e->consumer)))
    return e;
  if (absorbReader(e->consumer))
    return find(producer, c, reads, place);
  return e;
}

bool ConsumerEpilogue::absorbReader(linalg::GenericOp &first) {
  auto allParallel = [](linalg::GenericOp g) {
    return g.getNumParallelLoops() == g.getNumLoops();
  };
  if (!first.hasPureBufferSemantics() || !allParallel(first))
    return false;
  Block *block = first->getBlock();
  SmallVector<Value> firstRoots;
  for (Value v : first->getOperands())
    firstRoots.push_back(rootBuffer(v));
  for (OpOperand &out : first.getDpsInitsMutable()) {
    Value d = out.get();
    if (!d.getDefiningOp<memref::AllocOp>() ||
        !first.getMatchingIndexingMap(&out).isIdentity())
      continue;
    for (Operation *user : d.getUsers()) {
      auto second = dyn_cast<linalg::GenericOp>(user);
      if (!second || second == first || second->getBlock() != block ||
          !first->isBeforeInBlock(second) ||
          !second.hasPureBufferSemantics() || !allParallel(second) ||
          second.getNumLoops() != first.getNumLoops())
        continue;
      // d is one input of second, read with the identity map; second's
      // other operands are no other buffer of first's, are there before
      // first (outputs may be allocations that move up), and nothing in
      // between changes what second reads or touches what it writes.
      bool ok = true;
      SmallVector<Value> inputRoots = {d}, outputRoots;
      unsigned reads = 0;
      for (OpOperand &operand : second->getOpOperands()) {
        Value v = operand.get();
        bool init = second.isDpsInit(&operand);
        if (v == d) {
          ok &= !init && second.getMatchingIndexingMap(&operand).isIdentity();
          ++reads;
          continue;
        }
        Value root = rootBuffer(v);
        ok &= !llvm::is_contained(firstRoots, root);
        (init ? outputRoots : inputRoots).push_back(root);
        Operation *def = v.getDefiningOp();
        if (def && def->getBlock() == block && first->isBeforeInBlock(def))
          ok &= init && isa<memref::AllocOp>(def) && def->getNumOperands() == 0;
      }
      if (!ok || reads != 1 ||
          !untouchedBetween(first, second, inputRoots, outputRoots))
        continue;

      // One op computing both, in first's place.
      for (Value v : second.getDpsInits())
        if (Operation *def = v.getDefiningOp();
            def && def->getBlock() == block && first->isBeforeInBlock(def))
          def->moveBefore(first);
      SmallVector<Value> ins(first.getDpsInputs()), outs(first.getDpsInits());
      SmallVector<AffineMap> maps;
      for (OpOperand *operand : first.getDpsInputOperands())
        maps.push_back(first.getMatchingIndexingMap(operand));
      SmallVector<OpOperand *> secondIns;
      for (OpOperand *operand : second.getDpsInputOperands())
        if (operand->get() != d) {
          secondIns.push_back(operand);
          ins.push_back(operand->get());
          maps.push_back(second.getMatchingIndexingMap(operand));
        }
      for (OpOperand &operand : first.getDpsInitsMutable())
        maps.push_back(first.getMatchingIndexingMap(&operand));
      for (OpOperand &operand : second.getDpsInitsMutable()) {
        outs.push_back(operand.get());
        maps.push_back(second.getMatchingIndexingMap(&operand));
      }
      unsigned firstIns = first.getNumDpsInputs(),
               firstOuts = first.getNumDpsInits();
      unsigned dIndex = out.getOperandNumber() - firstIns;
      OpBuilder b(first);
      auto merged = linalg::GenericOp::create(
          b, first.getLoc(), TypeRange{}, ins, outs, maps,
          first.getIteratorTypesArray(),
          [&](OpBuilder &nb, Location loc, ValueRange args) {
            Block &body1 = first.getRegion().front();
            IRMapping m1;
            for (unsigned i = 0; i < firstIns; ++i)
              m1.map(body1.getArgument(i), args[i]);
            for (unsigned i = 0; i < firstOuts; ++i)
              m1.map(body1.getArgument(firstIns + i),
                     args[firstIns + secondIns.size() + i]);
            for (Operation &op : body1.without_terminator())
              nb.clone(op, m1);
            SmallVector<Value> yields;
            for (Value y : body1.getTerminator()->getOperands())
              yields.push_back(m1.lookupOrDefault(y));
            Block &body2 = second.getRegion().front();
            IRMapping m2;
            unsigned next = firstIns;
            for (OpOperand *operand : second.getDpsInputOperands()) {
              BlockArgument arg = second.getMatchingBlockArgument(operand);
              m2.map(arg, operand->get() == d ? yields[dIndex] : args[next++]);
            }
            unsigned outBase = firstIns + secondIns.size() + firstOuts;
            for (auto [i, operand] :
                 llvm::enumerate(second.getDpsInitsMutable()))
              m2.map(second.getMatchingBlockArgument(&operand),
                     args[outBase + i]);
            for (Operation &op : body2.without_terminator())
              nb.clone(op, m2);
            for (Value y : body2.getTerminator()->getOperands())
              yields.push_back(m2.lookupOrDefault(y));
            linalg::YieldOp::create(nb, loc, yields);
          });
      second.erase();
      first.erase();
      first = merged;
      return true;
    }
  }
  return false;
}

void ConsumerEpilogue::hoistOutputs(Operation *producer) {
  for (Value out : consumer.getDpsInits())
    if (auto alloc = out.getDefiningOp<memref::AllocOp>();
        alloc && alloc->getBlock() == producer->getBlock() &&
        producer->isBeforeInBlock(alloc))
      alloc->moveBefore(producer);
}

void ConsumerEpilogue::emit(OpBuilder &b, Location loc, Value row, Value col,
                            ArrayRef<Value> values) {
  int64_t n = values.size();
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
  SmallVector<Value> rowIvs;
  delinearize(row, groups[0], rowIvs);
  SmallVector<SmallVector<Value>> ivs(n, rowIvs);
  for (int64_t j = 0; j < n; ++j) {
    delinearize(j ? arith::AddIOp::create(b, loc, col, index(j)).getResult()
                  : col,
                groups[1], ivs[j]);
  }
  unsigned last = consumer.getNumLoops() - 1;
  // With an innermost dimension that n divides, the n values lie in one
  // row of it: operands indexed by that dimension last, with unit stride
  // and rows that n divides, hold them in n aligned consecutive elements.
  auto contiguous = [&](OpOperand &operand) {
    auto type = cast<MemRefType>(operand.get().getType());
    AffineMap map = consumer.getMatchingIndexingMap(&operand);
    if (n == 1 || groups[1].back() % n || !type.getLayout().isIdentity() ||
        type.getRank() == 0 || type.getShape().back() % n ||
        !type.getElementType().isIntOrFloat() ||
        type.getElementTypeBitWidth() % 8 || map.getNumResults() == 0 ||
        map.getResults().back() != getAffineDimExpr(last, b.getContext()))
      return false;
    return llvm::none_of(map.getResults().drop_back(), [&](AffineExpr r) {
      return r.isFunctionOfDim(last);
    });
  };
  auto indices = [&](OpOperand &operand, int64_t j) {
    return *affine::expandAffineMap(
        b, loc, consumer.getMatchingIndexingMap(&operand), ivs[j]);
  };
  auto vectorType = [&](OpOperand &operand) {
    return VectorType::get(
        {n}, cast<MemRefType>(operand.get().getType()).getElementType());
  };
  auto alignment = [&](OpOperand &operand) {
    return llvm::MaybeAlign(
        n * cast<MemRefType>(operand.get().getType()).getElementTypeBitWidth() /
        8);
  };

  // The body's arguments for each of the values.
  Block &body = consumer.getRegion().front();
  SmallVector<SmallVector<Value>> args(n);
  for (OpOperand &operand : consumer->getOpOperands()) {
    Value buffer = operand.get();
    BlockArgument arg = consumer.getMatchingBlockArgument(&operand);
    if (buffer == view) {
      for (int64_t j = 0; j < n; ++j)
        args[j].push_back(values[j]);
    } else if (consumer.isDpsInit(&operand) && arg.use_empty()) {
      for (int64_t j = 0; j < n; ++j)
        args[j].push_back({});
    } else if (contiguous(operand)) {
      Value all = vector::LoadOp::create(b, loc, vectorType(operand), buffer,
                                         indices(operand, 0), false,
                                         alignment(operand));
      for (int64_t j = 0; j < n; ++j)
        args[j].push_back(vector::ExtractOp::create(b, loc, all, j));
    } else {
      for (int64_t j = 0; j < n; ++j)
        args[j].push_back(
            memref::LoadOp::create(b, loc, buffer, indices(operand, j)));
    }
  }
  SmallVector<SmallVector<Value>> results(n);
  for (int64_t j = 0; j < n; ++j) {
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
    if (contiguous(operand)) {
      SmallVector<Value> all;
      for (int64_t j = 0; j < n; ++j)
        all.push_back(results[j][k]);
      vector::StoreOp::create(
          b, loc, vector::FromElementsOp::create(b, loc, vectorType(operand), all),
          operand.get(), indices(operand, 0), false, alignment(operand));
      continue;
    }
    for (int64_t j = 0; j < n; ++j)
      memref::StoreOp::create(b, loc, results[j][k], operand.get(),
                              indices(operand, j));
  }
}

void ConsumerEpilogue::eraseConsumer() {
  consumer.erase();
  if (auto expand = view.getDefiningOp<memref::ExpandShapeOp>();
      expand && expand->use_empty())
    expand.erase();
}

void ConsumerEpilogue::eraseIfUnused(Value c) {
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
