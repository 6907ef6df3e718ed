//===- StandIn.cpp - GPU kernels built after bufferization ----------------===//

#include "compiler/Conversion/NNToLinalg/StandIn.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;

namespace tessera {

Value readBuffer(OpBuilder &b, Location loc, Value t) {
  auto tt = cast<RankedTensorType>(t.getType());
  return bufferization::ToBufferOp::create(
      b, loc, MemRefType::get(tt.getShape(), tt.getElementType()), t,
      /*readOnly=*/true);
}

Value allocBuffer(OpBuilder &b, Location loc, ArrayRef<int64_t> shape) {
  return memref::AllocOp::create(b, loc,
                                 MemRefType::get(shape, b.getF32Type()));
}

Value tensorOf(OpBuilder &b, Location loc, Value m) {
  auto mt = cast<MemRefType>(m.getType());
  return bufferization::ToTensorOp::create(
      b, loc, RankedTensorType::get(mt.getShape(), mt.getElementType()), m,
      /*restrict=*/true, /*writable=*/true);
}

namespace {
/// Indices [0, ..., 0, i] into `m`.
SmallVector<Value> at(OpBuilder &b, Location loc, Value m, int64_t i) {
  auto c = [&](int64_t x) { return arith::ConstantIndexOp::create(b, loc, x); };
  SmallVector<Value> indices(cast<MemRefType>(m.getType()).getRank() - 1,
                             c(0));
  indices.push_back(c(i));
  return indices;
}

/// Input i's read in a stand-in body, as a vector<1xf32>. The reads are
/// vector.load: canonicalization turns a memref.load of a to_buffer into
/// a tensor.extract (folded away when the tensor is a constant).
Value readInput(OpBuilder &b, Location loc, Value in, int64_t i) {
  Type element = cast<MemRefType>(in.getType()).getElementType();
  auto f32 = VectorType::get({1}, b.getF32Type());
  Value x = vector::LoadOp::create(b, loc, VectorType::get({1}, element), in,
                                   at(b, loc, in, i));
  if (isa<IntegerType>(element))
    return arith::SIToFPOp::create(b, loc, f32, x);
  if (!element.isF32())
    return arith::ExtFOp::create(b, loc, f32, x);
  return x;
}
} // namespace

gpu::LaunchOp buildStandIn(OpBuilder &b, Location loc, int64_t gridX,
                           int64_t gridY, int64_t threads,
                           ArrayRef<Value> inputs, ArrayRef<Value> outputs,
                           StringRef attr, DictionaryAttr config) {
  auto c = [&](int64_t x) { return arith::ConstantIndexOp::create(b, loc, x); };
  auto launch = gpu::LaunchOp::create(b, loc, c(gridX), c(gridY), c(1),
                                      c(threads), c(1), c(1));
  launch->setAttr(attr, config);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(&launch.getBody().front());
  Value sum;
  for (auto [i, in] : llvm::enumerate(inputs)) {
    Value x = readInput(b, loc, in, i);
    sum = sum ? arith::AddFOp::create(b, loc, sum, x).getResult() : x;
  }
  for (auto [i, out] : llvm::enumerate(outputs))
    vector::StoreOp::create(b, loc, sum, out, at(b, loc, out, i));
  gpu::TerminatorOp::create(b, loc);
  return launch;
}

namespace {
/// The read (vector.load) or write (vector.store) of a stand-in body at
/// [..., index], or null.
template <typename AccessOp>
AccessOp standInAccess(gpu::LaunchOp launch, size_t index) {
  for (Operation &op : launch.getBody().front())
    if (auto access = dyn_cast<AccessOp>(op))
      if (std::optional<int64_t> i =
              getConstantIntValue(access.getIndices().back());
          i && size_t(*i) == index)
        return access;
  return {};
}
} // namespace

void replaceStandInOutput(gpu::LaunchOp launch, size_t index, Value buffer) {
  auto store = standInAccess<vector::StoreOp>(launch, index);
  if (!store)
    return;
  OpBuilder b(store);
  Location loc = store.getLoc();
  Value x = store.getValueToStore();
  Type element = cast<MemRefType>(buffer.getType()).getElementType();
  if (element != b.getF32Type())
    x = arith::TruncFOp::create(b, loc, VectorType::get({1}, element), x);
  vector::StoreOp::create(b, loc, x, buffer, at(b, loc, buffer, index));
  store.erase();
}

void replaceStandInInput(gpu::LaunchOp launch, size_t index, Value buffer) {
  auto load = standInAccess<vector::LoadOp>(launch, index);
  if (!load)
    return;
  OpBuilder b(load);
  Value x = readInput(b, load.getLoc(), buffer, index);
  // The old read may have been converted to f32 already.
  Value old = load.getResult();
  Operation *convert = old.hasOneUse() ? *old.getUsers().begin() : nullptr;
  if (convert && isa<arith::SIToFPOp, arith::ExtFOp>(convert)) {
    convert->getResult(0).replaceAllUsesWith(x);
    convert->erase();
  } else {
    old.replaceAllUsesWith(x);
  }
  load.erase();
}

LogicalResult readStandIn(gpu::LaunchOp launch, size_t numInputs,
                          SmallVectorImpl<Value> &inputs,
                          SmallVectorImpl<Value> &outputs) {
  inputs.assign(numInputs, Value());
  for (Operation &op : launch.getBody().front()) {
    auto place = [&](SmallVectorImpl<Value> &list, Value index, Value m) {
      std::optional<int64_t> i = getConstantIntValue(index);
      if (!i || *i < 0)
        return;
      if (size_t(*i) >= list.size())
        list.resize(*i + 1);
      list[*i] = m;
    };
    if (auto load = dyn_cast<vector::LoadOp>(op))
      place(inputs, load.getIndices().back(), load.getBase());
    else if (auto store = dyn_cast<vector::StoreOp>(op))
      place(outputs, store.getIndices().back(), store.getBase());
  }
  if (inputs.size() != numInputs || llvm::is_contained(inputs, Value()) ||
      outputs.empty() || llvm::is_contained(outputs, Value()))
    return launch.emitOpError("internal error: not a kernel's stand-in");
  return success();
}

} // namespace tessera
