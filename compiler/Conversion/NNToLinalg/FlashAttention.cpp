//===- FlashAttention.cpp - Attention without T x S tensors ---------------===//
//
// One loop iteration per (batch, row); each keeps a row of q (or k, v) and
// its accumulators as vectors, and walks the other sequence one row at a
// time. The forward pass is the online softmax:
//
//   s_j = (q . k_j) * scale        m' = max(m, s_j)
//   c = exp(m - m'), p = exp(s_j - m')
//   l' = l c + p                   acc' = acc c + p v_j       out = acc / l
//
// The backward pass recomputes the probabilities from each query row's
// log-sum-exp L = m + log(l) and uses delta = g . o (= sum_j p_j dp_j):
//
//   p_ij = exp(s_ij - L_i)   dp_ij = g_i . v_j   ds_ij = p_ij (dp_ij - delta_i) scale
//   dq_i = sum_j ds_ij k_j   dk_j = sum_i ds_ij q_i   dv_j = sum_i p_ij g_i
//
// dq loops over keys per query row; dk and dv loop over queries per key
// row: in one loop when the heads are small (4 rows of at most 32 floats),
// otherwise in two. Rows wider than 48 give dq and dk to several threads,
// each owning at most 32 columns of the accumulator and computing the dot
// products whole: a thread holds two rows and parts of two more instead of
// four rows (registers on a GPU). With `causal`, query i sees keys j <= i,
// so the loops stop at the diagonal. Dot products are reductions with
// `reassoc`: a tree, not a chain of dependent adds.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/NNToLinalg/FlashAttention.h"
#include "compiler/Conversion/NNToLinalg/RowMath.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <limits>

using namespace mlir;

namespace tessera {
namespace {

/// One scf.forall iteration per (batch n, row i, part c) in [0, batches) x
/// [0, rows) x [0, parts) writing part c of row i of every output: a vector
/// of E / parts elements for rank-3 outputs [n, rows, E], a scalar for
/// rank-2 outputs [n, rows] (with one part only). `body` returns those, in
/// order.
SmallVector<Value> rowPartsForall(
    OpBuilder &b, Location loc, ArrayRef<RankedTensorType> outTypes,
    int64_t parts,
    function_ref<SmallVector<Value>(RowMath &, Value, Value, Value)> body) {
  SmallVector<Value> inits;
  for (RankedTensorType t : outTypes)
    inits.push_back(
        tensor::EmptyOp::create(b, loc, t.getShape(), t.getElementType()));
  SmallVector<OpFoldResult> bounds = {b.getIndexAttr(outTypes[0].getDimSize(0)),
                                      b.getIndexAttr(outTypes[0].getDimSize(1))};
  if (parts > 1)
    bounds.push_back(b.getIndexAttr(parts));
  auto forall = scf::ForallOp::create(b, loc, bounds, inits, std::nullopt);

  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(forall.getTerminator());
  RowMath m{b, loc};
  Value n = forall.getInductionVar(0), i = forall.getInductionVar(1);
  Value c = parts > 1 ? forall.getInductionVar(2) : m.index(0);
  SmallVector<Value> rows = body(m, n, i, c);

  SmallVector<Value> slices;
  SmallVector<SmallVector<OpFoldResult>> offsets, sizes, strides;
  Value zero = m.index(0);
  for (auto [t, out, value] :
       llvm::zip_equal(outTypes, forall.getRegionIterArgs(), rows)) {
    bool isRow = t.getRank() == 3;
    assert((isRow || parts == 1) && "row statistics are not split");
    offsets.push_back({n, i});
    sizes.push_back({b.getIndexAttr(1), b.getIndexAttr(1)});
    strides.push_back({b.getIndexAttr(1), b.getIndexAttr(1)});
    SmallVector<int64_t> shape = {1, 1};
    if (isRow) {
      int64_t width = t.getDimSize(2) / parts;
      offsets.back().push_back(
          parts > 1
              ? OpFoldResult(arith::MulIOp::create(b, loc, c, m.index(width))
                                 .getResult())
              : OpFoldResult(b.getIndexAttr(0)));
      sizes.back().push_back(b.getIndexAttr(width));
      strides.back().push_back(b.getIndexAttr(1));
      shape.push_back(width);
    }
    auto sliceType = RankedTensorType::get(shape, t.getElementType());
    Value slice = tensor::ExtractSliceOp::create(
        b, loc, sliceType, out, offsets.back(), sizes.back(), strides.back());
    if (isRow)
      slices.push_back(vector::TransferWriteOp::create(
                           b, loc, value, slice, ValueRange{zero, zero, zero},
                           ArrayRef<bool>{true})
                           .getResult());
    else
      slices.push_back(tensor::InsertOp::create(b, loc, value, slice,
                                                ValueRange{zero, zero}));
  }
  b.setInsertionPointToStart(forall.getTerminator().getBody());
  for (auto [k, out] : llvm::enumerate(forall.getRegionIterArgs()))
    tensor::ParallelInsertSliceOp::create(b, loc, slices[k], out, offsets[k],
                                          sizes[k], strides[k]);
  return SmallVector<Value>(forall.getResults());
}

/// rowPartsForall with whole rows: one iteration per (batch n, row i).
SmallVector<Value>
rowForall(OpBuilder &b, Location loc, ArrayRef<RankedTensorType> outTypes,
          function_ref<SmallVector<Value>(RowMath &, Value, Value)> body) {
  return rowPartsForall(
      b, loc, outTypes, /*parts=*/1,
      [&](RowMath &m, Value n, Value i, Value) { return body(m, n, i); });
}

/// Part c of t[n, i, :] (`width` elements from c * width).
Value rowPart(RowMath &m, Value t, Value n, Value i, Value c, int64_t width) {
  Value offset = arith::MulIOp::create(m.b, m.loc, c, m.index(width));
  return m.read(t, {n, i, offset}, width);
}

/// How many threads share a row of an f32 gradient accumulator `d` wide:
/// when four rows of it would not fit in registers (with heads of 64, 256
/// floats: ptxas spilled 150-170 bytes; 4 x 40 fit), the fewest that give
/// each at most 32 columns, a multiple of 4 (vector loads). The loops below
/// then hold two whole rows (q and g, or k and v) plus a part of their
/// accumulator and of the row they stream. The dot products are computed
/// by each part: more arithmetic, in more threads.
int64_t accumulatorParts(int64_t d) {
  if (d <= 48)
    return 1;
  for (int64_t parts = 2; parts <= d / 4; ++parts)
    if (d % parts == 0 && d / parts <= 32 && (d / parts) % 4 == 0)
      return parts;
  return 1;
}

RankedTensorType typeOf(Value v) { return cast<RankedTensorType>(v.getType()); }

/// s_ij = (q_i . k_j) scale.
Value score(RowMath &m, Value qi, Value kj, double scale) {
  return m.mul(m.dot(qi, kj), m.cst(scale));
}
/// p_ij = exp(s_ij - L_i), L_i the row's log-sum-exp.
Value prob(RowMath &m, Value qi, Value kj, double scale, Value lse) {
  return m.exp(m.sub(score(m, qi, kj, scale), lse));
}
/// ds_ij = p_ij (g_i . v_j - delta_i) scale.
Value dscore(RowMath &m, Value p, Value gi, Value vj, Value delta,
             double scale) {
  return m.mul(m.mul(p, m.sub(m.dot(gi, vj), delta)), m.cst(scale));
}

/// dk and dv per key row j, over the queries that see it (i >= j when
/// causal), from each query row's log-sum-exp `lse` and delta = g . o. With
/// small heads one loop holds k_j, v_j, dk_j and dv_j (4 rows of at most
/// 32) and computes p_ij once for both; larger heads take two loops, dv's
/// holding k_j and dv_j, dk's k_j, v_j and its part of dk_j
/// (accumulatorParts).
std::pair<Value, Value> keyGrads(OpBuilder &b, Location loc, Value g, Value q,
                                 Value k, Value v, double scale, bool causal,
                                 Value lse, Value delta) {
  RankedTensorType kt = typeOf(k), vt = typeOf(v);
  int64_t queries = typeOf(q).getDimSize(1);
  auto lower = [&](RowMath &m, Value j) {
    return causal ? j : m.index(0);
  };
  int64_t d = kt.getDimSize(2), e = vt.getDimSize(2);
  if (d + e <= 64) {
    SmallVector<Value> dkv = rowForall(
        b, loc, {kt, vt}, [&](RowMath &m, Value n, Value j) {
          Value kj = m.row(k, n, j), vj = m.row(v, n, j);
          ValueRange r = m.loop(
              lower(m, j), m.index(queries), {m.zeros(d), m.zeros(e)},
              [&](Value i, ValueRange a) -> SmallVector<Value> {
                Value qi = m.row(q, n, i), gi = m.row(g, n, i);
                Value p = prob(m, qi, kj, scale, m.at(lse, n, i));
                Value ds = dscore(m, p, gi, vj, m.at(delta, n, i), scale);
                return {m.axpy(ds, qi, a[0]), m.axpy(p, gi, a[1])};
              });
          return SmallVector<Value>(r);
        });
    return {dkv[0], dkv[1]};
  }
  Value dv = rowForall(b, loc, {vt}, [&](RowMath &m, Value n, Value j) {
    Value kj = m.row(k, n, j);
    return SmallVector<Value>{
        m.loop(lower(m, j), m.index(queries), {m.zeros(e)},
               [&](Value i, ValueRange a) -> SmallVector<Value> {
                 Value p = prob(m, m.row(q, n, i), kj, scale, m.at(lse, n, i));
                 return {m.axpy(p, m.row(g, n, i), a[0])};
               })[0]};
  })[0];
  int64_t parts = accumulatorParts(d), width = d / parts;
  Value dk = rowPartsForall(
      b, loc, {kt}, parts,
      [&](RowMath &m, Value n, Value j, Value c) -> SmallVector<Value> {
        Value kj = m.row(k, n, j), vj = m.row(v, n, j);
        return {m.loop(
            lower(m, j), m.index(queries), {m.zeros(width)},
            [&](Value i, ValueRange a) -> SmallVector<Value> {
              Value qi = m.row(q, n, i);
              Value p = prob(m, qi, kj, scale, m.at(lse, n, i));
              Value ds = dscore(m, p, m.row(g, n, i), vj, m.at(delta, n, i),
                                scale);
              // The whole row when it is not split (the same values).
              Value qPart =
                  parts > 1 ? rowPart(m, q, n, i, c, width) : qi;
              return {m.axpy(ds, qPart, a[0])};
            })[0]};
      })[0];
  return {dk, dv};
}

} // namespace

bool flashAttentionApplies(RankedTensorType q, RankedTensorType v) {
  // A query row, the output accumulator and a key or value row in
  // registers: 3 x 128 floats would spill, so larger heads keep the
  // composed lowering.
  int64_t r = q.getRank();
  return q.getElementType().isF32() && q.hasStaticShape() &&
         v.hasStaticShape() && q.getDimSize(r - 1) <= 128 &&
         v.getDimSize(r - 1) <= 128;
}

FlashForward buildFlashAttention(OpBuilder &b, Location loc, Value q, Value k,
                                 Value v, double scale, bool causal,
                                 bool withLse) {
  RankedTensorType qt = typeOf(q), vt = typeOf(v);
  int64_t keys = vt.getDimSize(1), e = vt.getDimSize(2);
  auto outType = RankedTensorType::get({qt.getDimSize(0), qt.getDimSize(1), e},
                                       b.getF32Type());
  SmallVector<RankedTensorType> outTypes = {outType};
  if (withLse)
    outTypes.push_back(RankedTensorType::get(
        {qt.getDimSize(0), qt.getDimSize(1)}, b.getF32Type()));
  SmallVector<Value> r = rowForall(b, loc, outTypes, [&](RowMath &m, Value n, Value i) {
    Value qi = m.row(q, n, i);
    SmallVector<Value> init = m.softmaxInit();
    init.push_back(m.zeros(e));
    ValueRange r = m.loop(
        m.index(0), m.keysEnd(i, causal, keys), init,
        [&](Value j, ValueRange a) -> SmallVector<Value> {
          RowMath::Step st =
              m.onlineSoftmax(a[0], a[1], score(m, qi, m.row(k, n, j), scale));
          Value acc =
              m.axpy(st.p, m.row(v, n, j), m.mul(a[2], m.splat(st.c, a[2])));
          return {st.max, st.sum, acc};
        });
    SmallVector<Value> rows = {
        arith::DivFOp::create(b, loc, r[2], m.splat(r[1], r[2]))};
    if (withLse)
      rows.push_back(m.logSumExp(r[0], r[1]));
    return rows;
  });
  return {r[0], withLse ? r[1] : Value()};
}

SmallVector<Value, 3> buildFlashAttentionGrad(OpBuilder &b, Location loc,
                                              Value g, Value q, Value k,
                                              Value v, Value o, double scale,
                                              bool causal, Value forwardLse) {
  RankedTensorType qt = typeOf(q), kt = typeOf(k);
  int64_t batch = qt.getDimSize(0), queries = qt.getDimSize(1);
  int64_t keys = kt.getDimSize(1);
  auto rowStats = RankedTensorType::get({batch, queries}, b.getF32Type());
  // Query row i's log-sum-exp over the keys it sees, when the forward pass
  // did not keep it.
  auto rowLogSumExp = [&](RowMath &m, Value qi, Value n, Value i) {
    ValueRange st = m.loop(
        m.index(0), m.keysEnd(i, causal, keys), m.softmaxInit(),
        [&](Value j, ValueRange a) -> SmallVector<Value> {
          RowMath::Step step =
              m.onlineSoftmax(a[0], a[1], score(m, qi, m.row(k, n, j), scale));
          return {step.max, step.sum};
        });
    return m.logSumExp(st[0], st[1]);
  };
  // dq_i, or part c of it (`parts` > 1): over the keys query row i sees,
  // p_ij and ds_ij from the whole rows, the sum of ds_ij k_j over the part.
  auto dqLoop = [&](RowMath &m, Value qi, Value gi, Value n, Value i,
                    Value lseI, Value deltaI, Value c, int64_t parts) {
    int64_t width = qt.getDimSize(2) / parts;
    return m.loop(m.index(0), m.keysEnd(i, causal, keys), {m.zeros(width)},
                  [&](Value j, ValueRange a) -> SmallVector<Value> {
                    Value kj = m.row(k, n, j);
                    Value p = prob(m, qi, kj, scale, lseI);
                    Value ds = dscore(m, p, gi, m.row(v, n, j), deltaI, scale);
                    // The whole row when it is not split (the same values).
                    Value kPart =
                        parts > 1 ? rowPart(m, k, n, j, c, width) : kj;
                    return {m.axpy(ds, kPart, a[0])};
                  })[0];
  };

  // With wide heads, delta = g . o and (unless the forward pass gave it)
  // the log-sum-exp per query row first, then dq in parts of rows.
  int64_t dParts = accumulatorParts(qt.getDimSize(2));
  if (dParts > 1) {
    SmallVector<RankedTensorType> statTypes = {rowStats};
    if (!forwardLse)
      statTypes.push_back(rowStats);
    SmallVector<Value> stats = rowForall(
        b, loc, statTypes, [&](RowMath &m, Value n, Value i) {
          SmallVector<Value> rows = {m.dot(m.row(g, n, i), m.row(o, n, i))};
          if (!forwardLse)
            rows.push_back(rowLogSumExp(m, m.row(q, n, i), n, i));
          return rows;
        });
    Value delta = stats[0], lse = forwardLse ? forwardLse : stats[1];
    Value dq = rowPartsForall(
        b, loc, {qt}, dParts,
        [&](RowMath &m, Value n, Value i, Value c) -> SmallVector<Value> {
          return {dqLoop(m, m.row(q, n, i), m.row(g, n, i), n, i,
                         m.at(lse, n, i), m.at(delta, n, i), c, dParts)};
        })[0];
    auto [dk, dv] = keyGrads(b, loc, g, q, k, v, scale, causal, lse, delta);
    return {dq, dk, dv};
  }

  // dq, and per query row delta = g . o and (unless the forward pass gave
  // it) the log-sum-exp.
  SmallVector<RankedTensorType> firstTypes = {qt, rowStats};
  if (!forwardLse)
    firstTypes.push_back(rowStats);
  SmallVector<Value> first = rowForall(
      b, loc, firstTypes, [&](RowMath &m, Value n, Value i) {
        Value qi = m.row(q, n, i), gi = m.row(g, n, i);
        Value delta = m.dot(gi, m.row(o, n, i));
        Value lse = forwardLse ? m.at(forwardLse, n, i)
                               : rowLogSumExp(m, qi, n, i);
        Value dq = dqLoop(m, qi, gi, n, i, lse, delta, Value(), 1);
        SmallVector<Value> rows = {dq, delta};
        if (!forwardLse)
          rows.push_back(lse);
        return rows;
      });
  Value dq = first[0], delta = first[1];
  Value lse = forwardLse ? forwardLse : first[2];

  auto [dk, dv] = keyGrads(b, loc, g, q, k, v, scale, causal, lse, delta);
  return {dq, dk, dv};
}

} // namespace tessera
