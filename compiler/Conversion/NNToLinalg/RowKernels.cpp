//===- RowKernels.cpp - Row reductions as one loop per row ----------------===//
//
// One scf.forall iteration per row. Statistics are accumulated in vectors
// of `width` lanes (4, 2 or 1 floats, the largest that divides the row)
// and reduced across lanes at the end of each pass; the output row is then
// written `width` floats at a time. The formulas are the ones of the
// linalg lowering in NNToLinalg.cpp, term for term; only the order of the
// sums differs (lanes, then a tree).
//
// Softmax and cross-entropy use the online softmax per lane: a running
// max m and sum l with l' = l exp(m - m') + exp(x - m'). A lane (or row)
// that has only seen -inf keeps m = -inf and l = 0: the exponents are
// taken against 0 then, not against -inf (which would give NaN).
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/NNToLinalg/RowKernels.h"
#include "compiler/Conversion/NNToLinalg/RowMath.h"

#include "mlir/Dialect/SCF/IR/SCF.h"

using namespace mlir;

namespace tessera {
namespace {

RankedTensorType typeOf(Value v) { return cast<RankedTensorType>(v.getType()); }

/// The lanes of a row's chunks: the widest of 4, 2, 1 that divides `d`.
int64_t chunkWidth(int64_t d) { return d % 4 == 0 ? 4 : d % 2 == 0 ? 2 : 1; }

using StatsFn = function_ref<SmallVector<Value>(RowMath &, Value row)>;
using ChunkFn = function_ref<SmallVector<Value>(RowMath &, Value row,
                                                Value col, ArrayRef<Value>)>;

/// scf.forall over rows r in [0, rows). `stats(m, r)` returns the row's
/// scalars; the first `scalarOuts` of them are written to [rows] outputs.
/// Then a loop over the chunks at columns c = 0, w, 2w, ... < d writes
/// `rowOuts` [rows, d] outputs from `chunk(m, r, c, stats)` (one vector of
/// chunkWidth(d) lanes per output). Returns the row outputs, then the
/// scalar outputs.
SmallVector<Value> rowKernel(OpBuilder &b, Location loc, int64_t rows,
                             int64_t d, unsigned rowOuts, unsigned scalarOuts,
                             StatsFn stats, ChunkFn chunk) {
  Type f32 = b.getF32Type();
  auto rowType = RankedTensorType::get({1, d}, f32);
  auto scalarType = RankedTensorType::get({1}, f32);
  SmallVector<Value> inits;
  for (unsigned k = 0; k < rowOuts + scalarOuts; ++k)
    inits.push_back(tensor::EmptyOp::create(
        b, loc, k < rowOuts ? SmallVector<int64_t>{rows, d} : SmallVector<int64_t>{rows},
        f32));
  auto forall = scf::ForallOp::create(b, loc, {b.getIndexAttr(rows)}, inits,
                                      std::nullopt);

  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(forall.getTerminator());
  RowMath m{b, loc};
  Value r = forall.getInductionVar(0), zero = m.index(0);
  SmallVector<Value> st = stats(m, r);
  ValueRange outs = forall.getRegionIterArgs();

  OpFoldResult one = b.getIndexAttr(1);
  SmallVector<OpFoldResult> rowOffsets = {r, b.getIndexAttr(0)},
                            rowSizes = {one, b.getIndexAttr(d)},
                            rowStrides = {one, one};
  SmallVector<Value> slices;
  for (unsigned k = 0; k < rowOuts; ++k)
    slices.push_back(tensor::ExtractSliceOp::create(
        b, loc, rowType, outs[k], rowOffsets, rowSizes, rowStrides));
  if (rowOuts) {
    ValueRange written = m.loop(
        zero, m.index(d), slices,
        [&](Value c, ValueRange current) -> SmallVector<Value> {
          SmallVector<Value> next;
          for (auto [value, slice] :
               llvm::zip_equal(chunk(m, r, c, st), current))
            next.push_back(vector::TransferWriteOp::create(
                               b, loc, value, slice, ValueRange{zero, c},
                               ArrayRef<bool>{true})
                               .getResult());
          return next;
        },
        chunkWidth(d));
    slices.assign(written.begin(), written.end());
  }
  for (unsigned k = 0; k < scalarOuts; ++k) {
    Value slice = tensor::ExtractSliceOp::create(
        b, loc, scalarType, outs[rowOuts + k], ArrayRef<OpFoldResult>{r},
        ArrayRef<OpFoldResult>{one}, ArrayRef<OpFoldResult>{one});
    slices.push_back(tensor::InsertOp::create(b, loc, st[k], slice, zero));
  }

  b.setInsertionPointToStart(forall.getTerminator().getBody());
  for (auto [k, slice] : llvm::enumerate(slices)) {
    if (k < rowOuts)
      tensor::ParallelInsertSliceOp::create(b, loc, slice, outs[k], rowOffsets,
                                            rowSizes, rowStrides);
    else
      tensor::ParallelInsertSliceOp::create(
          b, loc, slice, outs[k], ArrayRef<OpFoldResult>{r},
          ArrayRef<OpFoldResult>{one}, ArrayRef<OpFoldResult>{one});
  }
  return SmallVector<Value>(forall.getResults());
}

/// The per-row passes over a [rows, d] tensor, at row `r`.
struct RowPass {
  RowMath &m;
  Value r;
  int64_t d, w;

  /// x[r, c:c+w].
  Value at(Value x, Value c) { return m.read(x, {r, c}, w); }
  /// v[c:c+w] of a rank-1 tensor (a weight).
  Value col(Value v, Value c) { return m.read(v, {c}, w); }
  Value lanes(Value s) {
    return vector::BroadcastOp::create(
        m.b, m.loc, VectorType::get({w}, m.f32()), s);
  }
  /// Sums of `term(c)` over the row, one per term function's result.
  SmallVector<Value>
  sums(unsigned n, function_ref<SmallVector<Value>(Value c)> terms) {
    SmallVector<Value> init(n, m.zeros(w));
    ValueRange acc = m.loop(
        m.index(0), m.index(d), init,
        [&](Value c, ValueRange a) -> SmallVector<Value> {
          SmallVector<Value> next;
          for (auto [sum, t] : llvm::zip_equal(a, terms(c)))
            next.push_back(m.add(sum, t));
          return next;
        },
        w);
    SmallVector<Value> out;
    for (Value lanesSum : acc)
      out.push_back(m.sum(lanesSum));
    return out;
  }
  /// 1 / sqrt(sum / d + eps).
  Value rsqrtMean(Value sum, double eps) {
    return math::RsqrtOp::create(
        m.b, m.loc, m.add(m.mul(sum, m.cst(1.0 / double(d))), m.cst(eps)));
  }
  /// v, or 0 where v is -inf.
  Value finiteOrZero(Value v) {
    Value negInf, zero;
    if (auto vt = dyn_cast<VectorType>(v.getType())) {
      negInf = m.full(vt.getNumElements(), -std::numeric_limits<double>::infinity());
      zero = m.zeros(vt.getNumElements());
    } else {
      negInf = m.cst(-std::numeric_limits<double>::infinity());
      zero = m.cst(0.0);
    }
    Value isNegInf = arith::CmpFOp::create(m.b, m.loc, arith::CmpFPredicate::OEQ,
                                           v, negInf);
    return arith::SelectOp::create(m.b, m.loc, isNegInf, zero, v);
  }
  /// The row's max M and sum L of exp(x - M), in one pass (online, per
  /// lane).
  std::pair<Value, Value> softmaxStats(Value x) {
    ValueRange s = m.loop(
        m.index(0), m.index(d),
        {m.full(w, -std::numeric_limits<double>::infinity()), m.zeros(w)},
        [&](Value c, ValueRange a) -> SmallVector<Value> {
          Value xs = at(x, c);
          Value mx = arith::MaximumFOp::create(m.b, m.loc, a[0], xs);
          Value base = finiteOrZero(mx);
          Value l = math::FmaOp::create(m.b, m.loc, a[1],
                                        m.exp(m.sub(a[0], base)),
                                        m.exp(m.sub(xs, base)));
          return {mx, l};
        },
        w);
    Value mx = m.max(s[0]);
    Value sum = m.sum(m.mul(s[1], m.exp(m.sub(s[0], lanes(finiteOrZero(mx))))));
    return {mx, sum};
  }
  /// exp(x - M) / L at columns [c, c+w).
  Value softmaxAt(Value x, Value c, Value mx, Value sum) {
    return m.div(m.exp(m.sub(at(x, c), lanes(mx))), lanes(sum));
  }
  /// The row's mean and 1/sqrt(var + eps), in two passes (the second over
  /// deviations from the mean, as the linalg lowering does).
  std::pair<Value, Value> meanAndRstd(Value x, double eps) {
    Value mean = m.mul(sums(1, [&](Value c) -> SmallVector<Value> {
                         return {at(x, c)};
                       })[0],
                       m.cst(1.0 / double(d)));
    Value squares = sums(1, [&](Value c) -> SmallVector<Value> {
      Value dev = m.sub(at(x, c), lanes(mean));
      return {m.mul(dev, dev)};
    })[0];
    return {mean, rsqrtMean(squares, eps)};
  }
};

std::pair<int64_t, int64_t> rowsAndWidth(Value x) {
  RankedTensorType t = typeOf(x);
  return {t.getDimSize(0), t.getDimSize(1)};
}

} // namespace

bool rowKernelApplies(RankedTensorType t) {
  return t.getElementType().isF32() && t.hasStaticShape() && t.getRank() >= 2;
}

Value buildRowSoftmax(OpBuilder &b, Location loc, Value x) {
  auto [rows, d] = rowsAndWidth(x);
  return rowKernel(
      b, loc, rows, d, 1, 0,
      [&](RowMath &m, Value r) -> SmallVector<Value> {
        auto [mx, sum] = RowPass{m, r, d, chunkWidth(d)}.softmaxStats(x);
        return {mx, sum};
      },
      [&](RowMath &m, Value r, Value c, ArrayRef<Value> s) -> SmallVector<Value> {
        return {RowPass{m, r, d, chunkWidth(d)}.softmaxAt(x, c, s[0], s[1])};
      })[0];
}

Value buildRowLayerNorm(OpBuilder &b, Location loc, Value x, Value w,
                        Value bias, double eps) {
  auto [rows, d] = rowsAndWidth(x);
  return rowKernel(
      b, loc, rows, d, 1, 0,
      [&](RowMath &m, Value r) -> SmallVector<Value> {
        auto [mean, rstd] = RowPass{m, r, d, chunkWidth(d)}.meanAndRstd(x, eps);
        return {mean, rstd};
      },
      [&](RowMath &m, Value r, Value c, ArrayRef<Value> s) -> SmallVector<Value> {
        RowPass p{m, r, d, chunkWidth(d)};
        Value xhat = m.mul(m.sub(p.at(x, c), p.lanes(s[0])), p.lanes(s[1]));
        return {m.add(m.mul(xhat, p.col(w, c)), p.col(bias, c))};
      })[0];
}

Value buildRowRMSNorm(OpBuilder &b, Location loc, Value x, Value w,
                      double eps) {
  auto [rows, d] = rowsAndWidth(x);
  return rowKernel(
      b, loc, rows, d, 1, 0,
      [&](RowMath &m, Value r) -> SmallVector<Value> {
        RowPass p{m, r, d, chunkWidth(d)};
        Value ss = p.sums(1, [&](Value c) -> SmallVector<Value> {
          Value xs = p.at(x, c);
          return {m.mul(xs, xs)};
        })[0];
        return {p.rsqrtMean(ss, eps)};
      },
      [&](RowMath &m, Value r, Value c, ArrayRef<Value> s) -> SmallVector<Value> {
        RowPass p{m, r, d, chunkWidth(d)};
        return {m.mul(m.mul(p.at(x, c), p.lanes(s[0])), p.col(w, c))};
      })[0];
}

SmallVector<Value, 3> buildRowLayerNormGrad(OpBuilder &b, Location loc,
                                            Value g, Value x, Value w,
                                            double eps) {
  // xhat = (x - mean) rstd, gy = g w:
  //   dx = rstd (gy - mean(gy) - xhat mean(gy xhat)).
  auto [rows, d] = rowsAndWidth(x);
  double inv = 1.0 / double(d);
  SmallVector<Value> out = rowKernel(
      b, loc, rows, d, 1, 2,
      [&](RowMath &m, Value r) -> SmallVector<Value> {
        RowPass p{m, r, d, chunkWidth(d)};
        auto [mean, rstd] = p.meanAndRstd(x, eps);
        SmallVector<Value> s = p.sums(2, [&](Value c) -> SmallVector<Value> {
          Value gy = m.mul(p.at(g, c), p.col(w, c));
          Value xhat = m.mul(m.sub(p.at(x, c), p.lanes(mean)), p.lanes(rstd));
          return {gy, m.mul(gy, xhat)};
        });
        return {mean, rstd, m.mul(s[0], m.cst(inv)), m.mul(s[1], m.cst(inv))};
      },
      [&](RowMath &m, Value r, Value c, ArrayRef<Value> s) -> SmallVector<Value> {
        RowPass p{m, r, d, chunkWidth(d)};
        Value gy = m.mul(p.at(g, c), p.col(w, c));
        Value xhat = m.mul(m.sub(p.at(x, c), p.lanes(s[0])), p.lanes(s[1]));
        Value centered =
            m.sub(m.sub(gy, p.lanes(s[2])), m.mul(xhat, p.lanes(s[3])));
        return {m.mul(centered, p.lanes(s[1]))};
      });
  return {out[0], out[1], out[2]};
}

SmallVector<Value, 2> buildRowRMSNormGrad(OpBuilder &b, Location loc, Value g,
                                          Value x, Value w, double eps) {
  // r = 1/sqrt(mean(x^2) + eps), gy = g w:  dx = r gy - x r^3 mean(gy x).
  auto [rows, d] = rowsAndWidth(x);
  SmallVector<Value> out = rowKernel(
      b, loc, rows, d, 1, 1,
      [&](RowMath &m, Value r) -> SmallVector<Value> {
        RowPass p{m, r, d, chunkWidth(d)};
        SmallVector<Value> s = p.sums(2, [&](Value c) -> SmallVector<Value> {
          Value xs = p.at(x, c);
          return {m.mul(xs, xs), m.mul(m.mul(p.at(g, c), p.col(w, c)), xs)};
        });
        Value rstd = p.rsqrtMean(s[0], eps);
        Value r3 = m.mul(rstd, m.mul(rstd, rstd));
        return {rstd, m.mul(r3, m.mul(s[1], m.cst(1.0 / double(d))))};
      },
      [&](RowMath &m, Value r, Value c, ArrayRef<Value> s) -> SmallVector<Value> {
        RowPass p{m, r, d, chunkWidth(d)};
        Value gy = m.mul(p.at(g, c), p.col(w, c));
        return {m.sub(m.mul(p.lanes(s[0]), gy), m.mul(p.at(x, c), p.lanes(s[1])))};
      });
  return {out[0], out[1]};
}

/// targets[r] as an index.
static Value targetAt(RowMath &m, Value targets, Value r) {
  Value t = tensor::ExtractOp::create(m.b, m.loc, targets, r);
  return arith::IndexCastOp::create(m.b, m.loc, m.b.getIndexType(), t);
}

Value buildRowCrossEntropy(OpBuilder &b, Location loc, Value logits,
                           Value targets) {
  auto [rows, d] = rowsAndWidth(logits);
  return rowKernel(
      b, loc, rows, d, 0, 1,
      [&](RowMath &m, Value r) -> SmallVector<Value> {
        auto [mx, sum] = RowPass{m, r, d, chunkWidth(d)}.softmaxStats(logits);
        Value lse = m.add(math::LogOp::create(m.b, m.loc, sum), mx);
        Value picked = tensor::ExtractOp::create(
            m.b, m.loc, logits, ValueRange{r, targetAt(m, targets, r)});
        return {m.sub(lse, picked)};
      },
      [](RowMath &, Value, Value, ArrayRef<Value>) -> SmallVector<Value> {
        return {};
      })[0];
}

Value buildRowCrossEntropyGrad(OpBuilder &b, Location loc, Value logits,
                               Value targets, Value g, double scale) {
  auto [rows, d] = rowsAndWidth(logits);
  return rowKernel(
      b, loc, rows, d, 1, 0,
      [&](RowMath &m, Value r) -> SmallVector<Value> {
        auto [mx, sum] = RowPass{m, r, d, chunkWidth(d)}.softmaxStats(logits);
        Value gs = m.mul(tensor::ExtractOp::create(m.b, m.loc, g, ValueRange{}),
                         m.cst(scale));
        return {mx, sum, gs, targetAt(m, targets, r)};
      },
      [&](RowMath &m, Value r, Value c, ArrayRef<Value> s) -> SmallVector<Value> {
        RowPass p{m, r, d, chunkWidth(d)};
        // The one-hot target, lane by lane.
        SmallVector<Value> hot;
        for (int64_t k = 0; k < p.w; ++k) {
          Value col = arith::AddIOp::create(m.b, m.loc, c, m.index(k));
          Value hit = arith::CmpIOp::create(m.b, m.loc, arith::CmpIPredicate::eq,
                                            col, s[3]);
          hot.push_back(
              arith::SelectOp::create(m.b, m.loc, hit, m.cst(1.0), m.cst(0.0)));
        }
        Value onehot = vector::FromElementsOp::create(
            m.b, m.loc, VectorType::get({p.w}, m.f32()), hot);
        return {m.mul(m.sub(p.softmaxAt(logits, c, s[0], s[1]), onehot),
                      p.lanes(s[2]))};
      })[0];
}

} // namespace tessera
