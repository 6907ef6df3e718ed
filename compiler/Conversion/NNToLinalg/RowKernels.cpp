//===- RowKernels.cpp - Row reductions as one loop per row ----------------===//
//
// Each row op is defined once (rowOp): its statistics at row r, from
// loops over chunks of `width` lanes (4, 2 or 1 floats, the largest that
// divides the row), then each chunk's outputs. Two drivers run it:
//
// * One scf.forall iteration per row, on tensors (the emulator's kernels,
//   and the GPU's where warps are not asked for). The chunks are at
//   columns 0, w, 2w, ...
// * A warp of 32 threads per row, as a GPU kernel (warp-rows): lane l
//   takes the chunks at columns l w, (l + 32) w, ..., so a warp reads 32
//   consecutive chunks at a time (coalesced), and each lane's partial
//   statistics are combined across the warp by butterfly shuffles, after
//   which every lane holds the row's. Blocks of 8 warps (8 rows). A
//   thread per row gave GPT-2's 8192-row layer norms 8192 threads, two
//   warps per multiprocessor of an H100: too few to cover memory latency.
//   The kernel is a stand-in launch (StandIn.h) until expandWarpRows.
//
// The formulas are the ones of the linalg lowering in NNToLinalg.cpp,
// term for term; only the order of the sums differs (lanes, warp lanes,
// then a tree).
//
// Softmax and cross-entropy use the online softmax per lane: a running
// max m and sum l with l' = l exp(m - m') + exp(x - m'). A lane (or row)
// that has only seen -inf keeps m = -inf and l = 0: the exponents are
// taken against 0 then, not against -inf (which would give NaN). Across
// lanes, the row's max M comes first; each lane then rescales its sum by
// exp(m - M) before the sums are added.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/NNToLinalg/RowKernels.h"
#include "compiler/Conversion/ConsumerEpilogue.h"
#include "compiler/Conversion/NNToLinalg/RowMath.h"
#include "compiler/Conversion/NNToLinalg/StandIn.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

#include <functional>

using namespace mlir;

namespace tessera {
namespace {

/// Threads of a warp, and warps (rows) per block of the warp kernels.
constexpr int64_t kWarp = 32, kWarpsPerBlock = 8;
/// Kernels with column sums: blocks of 4 warps, each taking 2 rows, so
/// that a block's partial sums cover 8 rows. For GPT-2's 8192 rows, 1024
/// blocks (7.8 a multiprocessor of an H100, 31 warps, all resident at
/// once: 24 KB of shared memory and ptxas's 55 registers a thread allow 9)
/// and partials of 1/8 of the rows' size. A guess, not a measurement.
constexpr int64_t kSumWarpsPerBlock = 4, kSumRowsPerWarp = 2;
/// The shared memory a block of such a kernel may use for its sums (the
/// static limit).
constexpr int64_t kSumSharedBytes = 48 * 1024;
constexpr llvm::StringLiteral kWarpRowsAttr = "tessera.warp_rows";

/// The lanes of a row's chunks: the widest of 4, 2, 1 that divides `d`.
int64_t chunkWidth(int64_t d) { return d % 4 == 0 ? 4 : d % 2 == 0 ? 2 : 1; }

/// src[indices] of a tensor or a memref.
Value element(OpBuilder &b, Location loc, Value src, ValueRange indices) {
  if (isa<MemRefType>(src.getType()))
    return memref::LoadOp::create(b, loc, src, indices);
  return tensor::ExtractOp::create(b, loc, src, indices);
}

/// The passes over row `r` of [rows, d] tensors or buffers, by one
/// iteration (chunks lo = 0, stride w) or by one lane of a warp (lo = lane
/// w, stride 32 w, statistics combined across the warp).
struct RowPass {
  RowMath &m;
  Value r;
  int64_t d, w;
  Value lo;
  int64_t stride;
  bool warp;

  /// x[r, c:c+w].
  Value at(Value x, Value c) { return m.read(x, {r, c}, w); }
  /// v[c:c+w] of a rank-1 tensor (a weight).
  Value col(Value v, Value c) { return m.read(v, {c}, w); }
  Value lanes(Value s) {
    return vector::BroadcastOp::create(
        m.b, m.loc, VectorType::get({w}, m.f32()), s);
  }
  /// A loop over this pass's chunks carrying `init`.
  ValueRange chunks(ValueRange init,
                    function_ref<SmallVector<Value>(Value, ValueRange)> body) {
    return m.loop(lo, m.index(d), init, body, stride);
  }
  /// s combined over the warp's lanes (a butterfly: every lane gets the
  /// same bits, as x + y = y + x), or s itself.
  Value acrossWarp(Value s, bool isMax) {
    if (!warp)
      return s;
    for (int64_t offset = kWarp / 2; offset >= 1; offset /= 2) {
      Value other =
          gpu::ShuffleOp::create(m.b, m.loc, s, int32_t(offset), int32_t(kWarp),
                                 gpu::ShuffleMode::XOR)
              .getShuffleResult();
      s = isMax ? arith::MaximumFOp::create(m.b, m.loc, s, other).getResult()
                : m.add(s, other);
    }
    return s;
  }
  /// The row's sums of `term(c)`, one per term function's result.
  SmallVector<Value>
  sums(unsigned n, function_ref<SmallVector<Value>(Value c)> terms) {
    SmallVector<Value> init(n, m.zeros(w));
    ValueRange acc =
        chunks(init, [&](Value c, ValueRange a) -> SmallVector<Value> {
          SmallVector<Value> next;
          for (auto [sum, t] : llvm::zip_equal(a, terms(c)))
            next.push_back(m.add(sum, t));
          return next;
        });
    SmallVector<Value> out;
    for (Value lanesSum : acc)
      out.push_back(acrossWarp(m.sum(lanesSum), /*isMax=*/false));
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
    ValueRange s = chunks(
        {m.full(w, -std::numeric_limits<double>::infinity()), m.zeros(w)},
        [&](Value c, ValueRange a) -> SmallVector<Value> {
          Value xs = at(x, c);
          Value mx = arith::MaximumFOp::create(m.b, m.loc, a[0], xs);
          Value base = finiteOrZero(mx);
          Value l = math::FmaOp::create(m.b, m.loc, a[1],
                                        m.exp(m.sub(a[0], base)),
                                        m.exp(m.sub(xs, base)));
          return {mx, l};
        });
    Value mx = acrossWarp(m.max(s[0]), /*isMax=*/true);
    Value sum = acrossWarp(
        m.sum(m.mul(s[1], m.exp(m.sub(s[0], lanes(finiteOrZero(mx)))))),
        /*isMax=*/false);
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
  /// targets[r] as an index.
  Value target(Value targets) {
    Value t = element(m.b, m.loc, targets, r);
    return arith::IndexCastOp::create(m.b, m.loc, m.b.getIndexType(), t);
  }
  /// The value of a rank-0 tensor, or of a [1] buffer (a stand-in's).
  Value scalar(Value s) {
    SmallVector<Value> indices;
    if (cast<ShapedType>(s.getType()).getRank() == 1)
      indices.push_back(m.index(0));
    return element(m.b, m.loc, s, indices);
  }
};

/// A row op: from its inputs (the first is [rows, d]), the statistics of
/// row r, of which the first `scalarOuts` are written to [rows] outputs;
/// then, per chunk at column c, one vector for each of `rowOuts` [rows, d]
/// outputs, followed by one for each of `columnSums` sums over the rows
/// (the warp driver's only; see expandWarpRows).
struct RowOp {
  unsigned numInputs, rowOuts, scalarOuts;
  std::function<SmallVector<Value>(RowPass &, ArrayRef<Value> in)> stats;
  std::function<SmallVector<Value>(RowPass &, Value c, ArrayRef<Value> stats,
                                   ArrayRef<Value> in)>
      chunk;
  unsigned columnSums = 0;
};

/// The row op `kind`; `param` is eps for the norms, the gradient's scale
/// for cross_entropy_grad. With `sums`, a norm gradient sums its weight's
/// (and bias's) gradient terms over the rows instead of writing the row
/// statistics that a separate sum would need.
RowOp rowOp(StringRef kind, double param, bool sums = false) {
  using Values = SmallVector<Value>;
  using In = ArrayRef<Value>;
  if (kind == "softmax") // {x}
    return {1, 1, 0,
            [](RowPass &p, In in) -> Values {
              auto [mx, sum] = p.softmaxStats(in[0]);
              return {mx, sum};
            },
            [](RowPass &p, Value c, In s, In in) -> Values {
              return {p.softmaxAt(in[0], c, s[0], s[1])};
            }};
  if (kind == "layer_norm") // {x, w, bias}
    return {3, 1, 0,
            [param](RowPass &p, In in) -> Values {
              auto [mean, rstd] = p.meanAndRstd(in[0], param);
              return {mean, rstd};
            },
            [](RowPass &p, Value c, In s, In in) -> Values {
              RowMath &m = p.m;
              Value xhat = m.mul(m.sub(p.at(in[0], c), p.lanes(s[0])),
                                 p.lanes(s[1]));
              return {m.add(m.mul(xhat, p.col(in[1], c)), p.col(in[2], c))};
            }};
  if (kind == "rms_norm") // {x, w}
    return {2, 1, 0,
            [param](RowPass &p, In in) -> Values {
              RowMath &m = p.m;
              Value ss = p.sums(1, [&](Value c) -> Values {
                Value xs = p.at(in[0], c);
                return {m.mul(xs, xs)};
              })[0];
              return {p.rsqrtMean(ss, param)};
            },
            [](RowPass &p, Value c, In s, In in) -> Values {
              RowMath &m = p.m;
              return {m.mul(m.mul(p.at(in[0], c), p.lanes(s[0])),
                            p.col(in[1], c))};
            }};
  if (kind == "layer_norm_grad") // {g, x, w} -> dx, mean, rstd
    // xhat = (x - mean) rstd, gy = g w:
    //   dx = rstd (gy - mean(gy) - xhat mean(gy xhat)).
    // With sums: dx, then the sums of g xhat (dw) and g (dbias).
    return {3, 1, sums ? 0u : 2u,
            [param](RowPass &p, In in) -> Values {
              RowMath &m = p.m;
              double inv = 1.0 / double(p.d);
              // Not a structured binding: the lambda below captures them.
              std::pair<Value, Value> stats = p.meanAndRstd(in[1], param);
              Value mean = stats.first, rstd = stats.second;
              Values s = p.sums(2, [&](Value c) -> Values {
                Value gy = m.mul(p.at(in[0], c), p.col(in[2], c));
                Value xhat = m.mul(m.sub(p.at(in[1], c), p.lanes(mean)),
                                   p.lanes(rstd));
                return {gy, m.mul(gy, xhat)};
              });
              return {mean, rstd, m.mul(s[0], m.cst(inv)),
                      m.mul(s[1], m.cst(inv))};
            },
            [sums](RowPass &p, Value c, In s, In in) -> Values {
              RowMath &m = p.m;
              Value g = p.at(in[0], c);
              Value gy = m.mul(g, p.col(in[2], c));
              Value xhat = m.mul(m.sub(p.at(in[1], c), p.lanes(s[0])),
                                 p.lanes(s[1]));
              Value centered = m.sub(m.sub(gy, p.lanes(s[2])),
                                     m.mul(xhat, p.lanes(s[3])));
              Value dx = m.mul(centered, p.lanes(s[1]));
              if (!sums)
                return {dx};
              return {dx, m.mul(g, xhat), g};
            },
            sums ? 2u : 0u};
  if (kind == "rms_norm_grad") // {g, x, w} -> dx, rstd
    // r = 1/sqrt(mean(x^2) + eps), gy = g w:  dx = r gy - x r^3 mean(gy x).
    // With sums: dx, then the sum of g x r (dw).
    return {3, 1, sums ? 0u : 1u,
            [param](RowPass &p, In in) -> Values {
              RowMath &m = p.m;
              Values s = p.sums(2, [&](Value c) -> Values {
                Value xs = p.at(in[1], c);
                return {m.mul(xs, xs),
                        m.mul(m.mul(p.at(in[0], c), p.col(in[2], c)), xs)};
              });
              Value rstd = p.rsqrtMean(s[0], param);
              Value r3 = m.mul(rstd, m.mul(rstd, rstd));
              return {rstd, m.mul(r3, m.mul(s[1], m.cst(1.0 / double(p.d))))};
            },
            [sums](RowPass &p, Value c, In s, In in) -> Values {
              RowMath &m = p.m;
              Value g = p.at(in[0], c), x = p.at(in[1], c);
              Value gy = m.mul(g, p.col(in[2], c));
              Value dx = m.sub(m.mul(p.lanes(s[0]), gy),
                               m.mul(x, p.lanes(s[1])));
              if (!sums)
                return {dx};
              return {dx, m.mul(m.mul(g, x), p.lanes(s[0]))};
            },
            sums ? 1u : 0u};
  // Cross-entropy's statistics: the row's loss (withLoss), then, when g is
  // among the inputs (a gradient), {max, sum, g scale, target}.
  auto ceStats = [param](RowPass &p, In in, bool withLoss) -> Values {
    RowMath &m = p.m;
    auto [mx, sum] = p.softmaxStats(in[0]);
    Value lse;
    if (withLoss)
      lse = m.add(math::LogOp::create(m.b, m.loc, sum), mx);
    Value t = p.target(in[1]);
    Values s;
    if (withLoss)
      s.push_back(m.sub(lse, m.widen(element(m.b, m.loc, in[0], {p.r, t}))));
    if (in.size() > 2)
      s.append({mx, sum, m.mul(p.scalar(in[2]), m.cst(param)), t});
    return s;
  };
  // (softmax - onehot(target)) g scale, from ceStats without the loss.
  auto ceGrad = [](RowPass &p, Value c, In s, In in) -> Values {
    RowMath &m = p.m;
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
    return {m.mul(m.sub(p.softmaxAt(in[0], c, s[0], s[1]), onehot),
                  p.lanes(s[2]))};
  };
  if (kind == "cross_entropy") // {logits, targets} -> loss per row
    return {2, 0, 1,
            [=](RowPass &p, In in) -> Values {
              return ceStats(p, in, /*withLoss=*/true);
            },
            [](RowPass &, Value, In, In) -> Values { return {}; }};
  if (kind == "cross_entropy_grad") // {logits, targets, g} -> dx
    return {3, 1, 0,
            [=](RowPass &p, In in) -> Values {
              return ceStats(p, in, /*withLoss=*/false);
            },
            ceGrad};
  assert(kind == "cross_entropy_with_grad" && "unknown row op");
  // {logits, targets, g} -> dx, loss per row
  return {3, 1, 1,
          [=](RowPass &p, In in) -> Values {
            return ceStats(p, in, /*withLoss=*/true);
          },
          [=](RowPass &p, Value c, In s, In in) -> Values {
            return ceGrad(p, c, s.drop_front(), in);
          }};
}

std::pair<int64_t, int64_t> rowsAndWidth(Value x) {
  auto t = cast<ShapedType>(x.getType());
  return {t.getDimSize(0), t.getDimSize(1)};
}

/// `op` as one scf.forall iteration per row, on tensors. Returns the row
/// outputs, then the scalar outputs.
SmallVector<Value> forallKernel(OpBuilder &b, Location loc, const RowOp &op,
                                ArrayRef<Value> inputs) {
  auto [rows, d] = rowsAndWidth(inputs[0]);
  Type f32 = b.getF32Type();
  auto rowType = RankedTensorType::get({1, d}, f32);
  auto scalarType = RankedTensorType::get({1}, f32);
  SmallVector<Value> inits;
  for (unsigned k = 0; k < op.rowOuts + op.scalarOuts; ++k)
    inits.push_back(tensor::EmptyOp::create(
        b, loc,
        k < op.rowOuts ? SmallVector<int64_t>{rows, d} : SmallVector<int64_t>{rows},
        f32));
  auto forall = scf::ForallOp::create(b, loc, {b.getIndexAttr(rows)}, inits,
                                      std::nullopt);

  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(forall.getTerminator());
  RowMath m{b, loc};
  Value r = forall.getInductionVar(0), zero = m.index(0);
  int64_t w = chunkWidth(d);
  RowPass p{m, r, d, w, zero, w, /*warp=*/false};
  SmallVector<Value> st = op.stats(p, inputs);
  ValueRange outs = forall.getRegionIterArgs();

  OpFoldResult one = b.getIndexAttr(1);
  SmallVector<OpFoldResult> rowOffsets = {r, b.getIndexAttr(0)},
                            rowSizes = {one, b.getIndexAttr(d)},
                            rowStrides = {one, one};
  SmallVector<Value> slices;
  for (unsigned k = 0; k < op.rowOuts; ++k)
    slices.push_back(tensor::ExtractSliceOp::create(
        b, loc, rowType, outs[k], rowOffsets, rowSizes, rowStrides));
  if (op.rowOuts) {
    ValueRange written =
        p.chunks(slices, [&](Value c, ValueRange current) -> SmallVector<Value> {
          SmallVector<Value> next;
          for (auto [value, slice] :
               llvm::zip_equal(op.chunk(p, c, st, inputs), current))
            next.push_back(vector::TransferWriteOp::create(
                               b, loc, value, slice, ValueRange{zero, c},
                               ArrayRef<bool>{true})
                               .getResult());
          return next;
        });
    slices.assign(written.begin(), written.end());
  }
  ArrayRef<Value> scalars = ArrayRef<Value>(st).take_front(op.scalarOuts);
  for (auto [k, s] : llvm::enumerate(scalars)) {
    Value slice = tensor::ExtractSliceOp::create(
        b, loc, scalarType, outs[op.rowOuts + k], ArrayRef<OpFoldResult>{r},
        ArrayRef<OpFoldResult>{one}, ArrayRef<OpFoldResult>{one});
    slices.push_back(tensor::InsertOp::create(b, loc, s, slice, zero));
  }

  b.setInsertionPointToStart(forall.getTerminator().getBody());
  for (auto [k, slice] : llvm::enumerate(slices)) {
    if (k < op.rowOuts)
      tensor::ParallelInsertSliceOp::create(b, loc, slice, outs[k], rowOffsets,
                                            rowSizes, rowStrides);
    else
      tensor::ParallelInsertSliceOp::create(
          b, loc, slice, outs[k], ArrayRef<OpFoldResult>{r},
          ArrayRef<OpFoldResult>{one}, ArrayRef<OpFoldResult>{one});
  }
  return SmallVector<Value>(forall.getResults());
}

/// `op` as a stand-in for expandWarpRows's kernel: a warp per row, blocks
/// of kWarpsPerBlock rows (with column sums, blocks of kSumWarpsPerBlock
/// warps of kSumRowsPerWarp rows, and an output of [blocks, d] partial
/// sums for each). A rank-0 input is passed as [1].
SmallVector<Value> warpKernel(OpBuilder &b, Location loc, StringRef kind,
                              double param, const RowOp &op,
                              ArrayRef<Value> inputs) {
  auto [rows, d] = rowsAndWidth(inputs[0]);
  int64_t warps = op.columnSums ? kSumWarpsPerBlock : kWarpsPerBlock;
  int64_t blocks = llvm::divideCeil(
      rows, warps * (op.columnSums ? kSumRowsPerWarp : 1));
  SmallVector<Value> ins, outs;
  for (Value in : inputs) {
    auto t = cast<RankedTensorType>(in.getType());
    if (t.getRank() == 0)
      in = tensor::ExpandShapeOp::create(
          b, loc, RankedTensorType::get({1}, t.getElementType()), in,
          SmallVector<ReassociationIndices>{});
    ins.push_back(readBuffer(b, loc, in));
  }
  for (unsigned k = 0; k < op.rowOuts + op.scalarOuts; ++k)
    outs.push_back(allocBuffer(
        b, loc, k < op.rowOuts ? SmallVector<int64_t>{rows, d} : SmallVector<int64_t>{rows}));
  for (unsigned k = 0; k < op.columnSums; ++k)
    outs.push_back(allocBuffer(b, loc, {blocks, d}));
  NamedAttrList config;
  config.append("kind", b.getStringAttr(kind));
  config.append("param", b.getF64FloatAttr(param));
  if (op.columnSums)
    config.append("sums", b.getUnitAttr());
  buildStandIn(b, loc, blocks, 1, kWarp * warps, ins, outs,
               kWarpRowsAttr, config.getDictionary(b.getContext()));
  SmallVector<Value> results;
  for (Value out : outs)
    results.push_back(tensorOf(b, loc, out));
  return results;
}

/// Row op `kind` on `inputs` (tensors), by the driver `warps` asks for
/// (`sums` only with warps).
SmallVector<Value> rowKernel(OpBuilder &b, Location loc, StringRef kind,
                             double param, ArrayRef<Value> inputs, bool warps,
                             bool sums = false) {
  RowOp op = rowOp(kind, param, sums);
  assert(inputs.size() == op.numInputs && "wrong number of row-op inputs");
  assert((warps || !sums) && "column sums need the warp driver");
  return warps ? warpKernel(b, loc, kind, param, op, inputs)
               : forallKernel(b, loc, op, inputs);
}

} // namespace

bool rowKernelApplies(RankedTensorType t) {
  return t.getElementType().isF32() && t.hasStaticShape() && t.getRank() >= 2;
}

Value buildRowSoftmax(OpBuilder &b, Location loc, Value x, bool warps) {
  return rowKernel(b, loc, "softmax", 0, {x}, warps)[0];
}

Value buildRowLayerNorm(OpBuilder &b, Location loc, Value x, Value w,
                        Value bias, double eps, bool warps) {
  return rowKernel(b, loc, "layer_norm", eps, {x, w, bias}, warps)[0];
}

Value buildRowRMSNorm(OpBuilder &b, Location loc, Value x, Value w,
                      double eps, bool warps) {
  return rowKernel(b, loc, "rms_norm", eps, {x, w}, warps)[0];
}

SmallVector<Value, 3> buildRowLayerNormGrad(OpBuilder &b, Location loc,
                                            Value g, Value x, Value w,
                                            double eps, bool warps) {
  SmallVector<Value> out =
      rowKernel(b, loc, "layer_norm_grad", eps, {g, x, w}, warps);
  return {out[0], out[1], out[2]};
}

SmallVector<Value, 2> buildRowRMSNormGrad(OpBuilder &b, Location loc, Value g,
                                          Value x, Value w, double eps,
                                          bool warps) {
  SmallVector<Value> out =
      rowKernel(b, loc, "rms_norm_grad", eps, {g, x, w}, warps);
  return {out[0], out[1]};
}

bool warpColumnSumsApply(int64_t d, unsigned sums) {
  return int64_t(sums) * kSumWarpsPerBlock * d * 4 <= kSumSharedBytes;
}

SmallVector<Value, 3> buildWarpLayerNormGradSums(OpBuilder &b, Location loc,
                                                 Value g, Value x, Value w,
                                                 double eps) {
  SmallVector<Value> out = rowKernel(b, loc, "layer_norm_grad", eps, {g, x, w},
                                     /*warps=*/true, /*sums=*/true);
  return {out[0], out[1], out[2]};
}

SmallVector<Value, 2> buildWarpRMSNormGradSums(OpBuilder &b, Location loc,
                                               Value g, Value x, Value w,
                                               double eps) {
  SmallVector<Value> out = rowKernel(b, loc, "rms_norm_grad", eps, {g, x, w},
                                     /*warps=*/true, /*sums=*/true);
  return {out[0], out[1]};
}

Value buildRowCrossEntropy(OpBuilder &b, Location loc, Value logits,
                           Value targets, bool warps) {
  return rowKernel(b, loc, "cross_entropy", 0, {logits, targets}, warps)[0];
}

std::pair<Value, Value> buildRowCrossEntropyWithGrad(OpBuilder &b,
                                                     Location loc, Value logits,
                                                     Value targets, Value g,
                                                     double scale, bool warps) {
  SmallVector<Value> out = rowKernel(b, loc, "cross_entropy_with_grad", scale,
                                     {logits, targets, g}, warps);
  return {out[0], out[1]};
}

Value buildRowCrossEntropyGrad(OpBuilder &b, Location loc, Value logits,
                               Value targets, Value g, double scale,
                               bool warps) {
  return rowKernel(b, loc, "cross_entropy_grad", scale, {logits, targets, g},
                   warps)[0];
}

Value warpRowsFirstInput(gpu::LaunchOp launch) {
  auto config = launch->getAttrOfType<DictionaryAttr>(kWarpRowsAttr);
  if (!config)
    return {};
  RowOp op = rowOp(cast<StringAttr>(config.get("kind")).getValue(), 0);
  SmallVector<Value> in, out;
  if (failed(readStandIn(launch, op.numInputs, in, out)))
    return {};
  return in[0];
}

void setWarpRowsHalves(gpu::LaunchOp launch, StringRef format) {
  auto config = launch->getAttrOfType<DictionaryAttr>(kWarpRowsAttr);
  NamedAttrList attrs(config);
  attrs.set("halves", StringAttr::get(launch.getContext(), format));
  launch->setAttr(kWarpRowsAttr, attrs.getDictionary(launch.getContext()));
}

/// The body of a warp kernel with column sums (rowOp's `sums`): warp j of
/// block i takes rows 8 i + j and 8 i + 4 + j. The block keeps its sums in
/// shared memory, [sums, warps, d], where each warp adds its rows' terms
/// to its own row, each lane to the columns of its own chunks (so no two
/// threads touch one float until the barrier); then thread t adds column
/// t (t + 128, ...) of each sum over the warps, in warp order, and stores
/// it in the block's row of the sum's [blocks, d] output. `chunk` emits a
/// chunk's row outputs and returns its terms.
static void emitColumnSums(
    gpu::LaunchOp launch, RowMath &m, const RowOp &op, ArrayRef<Value> in,
    ArrayRef<Value> partials, Value lane, Value warp,
    function_ref<SmallVector<Value>(RowPass &, Value c, ArrayRef<Value> st)>
        chunk) {
  OpBuilder &b = m.b;
  Location loc = m.loc;
  // Not a structured binding: the lambdas below capture them.
  std::pair<int64_t, int64_t> shape = rowsAndWidth(in[0]);
  int64_t rows = shape.first, d = shape.second;
  int64_t w = chunkWidth(d);
  unsigned sums = op.columnSums;
  MLIRContext *ctx = b.getContext();
  auto shared = gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
  Value buffer = launch.addWorkgroupAttribution(
      MemRefType::get({sums, kSumWarpsPerBlock, d}, m.f32(),
                      MemRefLayoutAttrInterface{}, shared),
      loc);
  auto slot = [&](unsigned s, Value c) -> SmallVector<Value> {
    return {m.index(s), warp, c};
  };
  Value lo = arith::MulIOp::create(b, loc, lane, m.index(w));
  m.loop(lo, m.index(d), {},
         [&](Value c, ValueRange) -> SmallVector<Value> {
           for (unsigned s = 0; s < sums; ++s)
             vector::TransferWriteOp::create(b, loc, m.zeros(w), buffer,
                                             slot(s, c), ArrayRef<bool>{true});
           return {};
         },
         kWarp * w);

  Value block = launch.getBlockIds().x;
  Value first = arith::AddIOp::create(
      b, loc,
      arith::MulIOp::create(b, loc, block,
                            m.index(kSumWarpsPerBlock * kSumRowsPerWarp)),
      warp);
  // The warp's rows are unrolled: as a two-trip loop, LLVM carries its
  // exit in a predicate, which ptxas (sm_80) spilled in some widths.
  for (int64_t i = 0; i < kSumRowsPerWarp; ++i) {
    Value r = i ? arith::AddIOp::create(b, loc, first,
                                        m.index(i * kSumWarpsPerBlock))
                      .getResult()
                : first;
    // Uniform across the warp, so its shuffles stay whole.
    Value inRange = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, r,
                                          m.index(rows));
    auto ifRow = scf::IfOp::create(b, loc, inRange, /*withElse=*/false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(ifRow.thenBlock()->getTerminator());
    RowPass p{m, r, d, w, lo, kWarp * w, /*warp=*/true};
    SmallVector<Value> st = op.stats(p, in);
    p.chunks({}, [&](Value c, ValueRange) -> SmallVector<Value> {
      for (auto [s, term] : llvm::enumerate(chunk(p, c, st))) {
        Value sum = m.add(m.read(buffer, slot(s, c), w), term);
        vector::TransferWriteOp::create(b, loc, sum, buffer, slot(s, c),
                                        ArrayRef<bool>{true});
      }
      return {};
    });
  }

  gpu::BarrierOp::create(b, loc);
  m.loop(launch.getThreadIds().x, m.index(d), {},
         [&](Value col, ValueRange) -> SmallVector<Value> {
           for (unsigned s = 0; s < sums; ++s) {
             Value total;
             for (int64_t j = 0; j < kSumWarpsPerBlock; ++j) {
               Value v = memref::LoadOp::create(
                   b, loc, buffer, ValueRange{m.index(s), m.index(j), col});
               total = j ? m.add(total, v) : v;
             }
             memref::StoreOp::create(b, loc, total, partials[s],
                                     ValueRange{block, col});
           }
           return {};
         },
         kWarp * kSumWarpsPerBlock);
}

LogicalResult expandWarpRows(gpu::LaunchOp launch) {
  auto config = launch->getAttrOfType<DictionaryAttr>(kWarpRowsAttr);
  if (!config)
    return success();
  launch->removeAttr(kWarpRowsAttr);
  StringRef kind = cast<StringAttr>(config.get("kind")).getValue();
  RowOp op = rowOp(kind, cast<FloatAttr>(config.get("param")).getValueAsDouble(),
                   config.contains("sums"));
  SmallVector<Value> in, out;
  if (failed(readStandIn(launch, op.numInputs, in, out)))
    return failure();
  if (out.size() != op.rowOuts + op.scalarOuts + op.columnSums)
    return launch.emitOpError("internal error: row kernel outputs");
  auto [rows, d] = rowsAndWidth(in[0]);
  // Element-wise consumers of the rows (a cast to a matmul operand, say)
  // move up into the kernel: the rows are stored only if something else
  // reads them too. A consumer first takes in what reads its own output in
  // turn (a residual gradient's sum and its bf16 rounding).
  SmallVector<std::optional<ConsumerEpilogue>> epilogues;
  for (unsigned k = 0; k < op.rowOuts; ++k) {
    epilogues.push_back(ConsumerEpilogue::findAbsorbing(
        launch, out[k], in, ConsumerEpilogue::Place::Producer));
    if (epilogues.back())
      epilogues.back()->hoistOutputs(launch);
  }

  Block &body = launch.getBody().front();
  while (!body.empty())
    body.back().erase();
  Location loc = launch.getLoc();
  OpBuilder b(launch.getContext());
  b.setInsertionPointToStart(&body);
  RowMath m{b, loc};
  if (auto halves = config.getAs<StringAttr>("halves"))
    m.halvesAreBF16 = halves.getValue() == "bf16";
  Value tid = launch.getThreadIds().x;
  Value lane = arith::RemUIOp::create(b, loc, tid, m.index(kWarp));
  Value warp = arith::DivUIOp::create(b, loc, tid, m.index(kWarp));
  int64_t w = chunkWidth(d);
  // Chunk c of row p.r: stores its row outputs (or hands them to their
  // epilogues) and returns its column sums' terms.
  auto chunk = [&](RowPass &p, Value c,
                   ArrayRef<Value> st) -> SmallVector<Value> {
    SmallVector<Value> values = op.chunk(p, c, st, in);
    for (unsigned k = 0; k < op.rowOuts; ++k) {
      if (!epilogues[k] || epilogues[k]->storesC())
        vector::TransferWriteOp::create(b, loc, values[k], out[k],
                                        ValueRange{p.r, c},
                                        ArrayRef<bool>{true});
      if (!epilogues[k])
        continue;
      SmallVector<Value> lanes;
      for (int64_t j = 0; j < w; ++j)
        lanes.push_back(vector::ExtractOp::create(b, loc, values[k], j));
      epilogues[k]->emit(b, loc, p.r, c, lanes);
    }
    return SmallVector<Value>(ArrayRef<Value>(values).drop_front(op.rowOuts));
  };

  if (op.columnSums) {
    emitColumnSums(launch, m, op, in,
                   ArrayRef<Value>(out).take_back(op.columnSums), lane, warp,
                   chunk);
    gpu::TerminatorOp::create(b, loc);
  } else {
    Value r = arith::AddIOp::create(
        b, loc,
        arith::MulIOp::create(b, loc, launch.getBlockIds().x,
                              m.index(kWarpsPerBlock)),
        warp);
    // The last block's warps past the last row do nothing (the condition is
    // the same for all lanes of a warp, so its shuffles stay whole).
    Value inRange = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, r,
                                          m.index(rows));
    auto ifRow = scf::IfOp::create(b, loc, inRange, /*withElse=*/false);
    gpu::TerminatorOp::create(b, loc);

    b.setInsertionPoint(ifRow.thenBlock()->getTerminator());
    RowPass p{m, r, d, w, arith::MulIOp::create(b, loc, lane, m.index(w)),
              kWarp * w, /*warp=*/true};
    SmallVector<Value> st = op.stats(p, in);
    if (op.scalarOuts) {
      Value first = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                                          lane, m.index(0));
      auto ifFirst = scf::IfOp::create(b, loc, first, /*withElse=*/false);
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPoint(ifFirst.thenBlock()->getTerminator());
      for (unsigned k = 0; k < op.scalarOuts; ++k)
        memref::StoreOp::create(b, loc, st[k], out[op.rowOuts + k], r);
    }
    if (op.rowOuts)
      p.chunks({}, [&](Value c, ValueRange) -> SmallVector<Value> {
        chunk(p, c, st);
        return {};
      });
  }
  for (auto [k, epilogue] : llvm::enumerate(epilogues))
    if (epilogue) {
      epilogue->eraseConsumer();
      ConsumerEpilogue::eraseIfUnused(out[k]);
    }
  return success();
}

} // namespace tessera
