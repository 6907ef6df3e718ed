//===- MmaAttention.cpp - Flash attention on tensor cores -----------------===//
//
// The forward pass of attention as one GPU kernel whose products run on
// tensor cores (mma.sync m16n8k16), in the manner of FlashAttention-2.
//
// A block of 4 warps owns 64 query rows of one (batch, head); each warp
// owns 16 of them. The block's Q tile goes through shared memory into
// registers once (A fragments). For each tile of 64 keys the block copies
// K and V into shared memory (f32 -> bf16/f16), then each warp
//
//   S = Q K^T          mma: A = Q fragments, B = K rows by ldmatrix
//   online softmax     on S's accumulator fragments: a thread holds 2 rows
//                      x 16 columns, the row max/sum take two shuffles
//   O = O c + P V      P's accumulator fragments are, in half precision,
//                      the A fragments of this product; V by ldmatrix.trans
//
// and at the end O / l and L = m + log(l). Shared memory rows are padded by
// 8 halves so that the 8 rows an ldmatrix reads fall in distinct banks.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/MmaUtils.h"
#include "compiler/Conversion/NNToLinalg/FlashAttention.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/UB/IR/UBOps.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <array>
#include <limits>

using namespace mlir;

namespace tessera {
namespace {

/// Query rows per block and per warp, keys per tile, threads per block.
constexpr int64_t kRows = 64, kWarpRows = 16, kKeys = 64, kThreads = 128;
static_assert(kRows == kKeys, "the Q tile passes through the K tile");
/// Halves of padding after each shared-memory row.
constexpr int64_t kPad = 8;

/// The builders of the kernel body. Fragments are nvgpu's: A is
/// vector<4x2xf16>, B vector<2x2xf16>, C vector<2x2xf32>; bf16 bits travel
/// in f16 vectors (retypeMmaToBF16 gives the mma its real type).
struct Kernel {
  OpBuilder &b;
  Location loc;
  bool bf16;
  Value tid, lane, warp;

  Type f16() { return b.getF16Type(); }
  Type f32() { return b.getF32Type(); }
  Value index(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value cst(double v) {
    return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
  }
  Value add(Value x, Value y) {
    if (isa<IndexType>(x.getType()))
      return arith::AddIOp::create(b, loc, x, y);
    return arith::AddFOp::create(b, loc, x, y);
  }
  Value add(Value x, int64_t c) { return c ? add(x, index(c)) : x; }
  Value mulIdx(Value x, int64_t c) {
    return arith::MulIOp::create(b, loc, x, index(c));
  }
  Value div(Value x, int64_t c) {
    return arith::DivUIOp::create(b, loc, x, index(c));
  }
  Value rem(Value x, int64_t c) {
    return arith::RemUIOp::create(b, loc, x, index(c));
  }
  Value mul(Value x, Value y) { return arith::MulFOp::create(b, loc, x, y); }
  Value sub(Value x, Value y) { return arith::SubFOp::create(b, loc, x, y); }
  Value max(Value x, Value y) {
    return arith::MaximumFOp::create(b, loc, x, y);
  }
  Value exp(Value x) { return math::ExpOp::create(b, loc, x); }
  void barrier() { gpu::BarrierOp::create(b, loc); }
  /// `x` combined with the values of the lanes 1 and 2 apart: the 4
  /// threads of a quad hold one row of an accumulator fragment.
  Value quadReduce(Value x, bool isMax) {
    for (int32_t offset : {1, 2}) {
      Value other = gpu::ShuffleOp::create(b, loc, x, offset, 32,
                                           gpu::ShuffleMode::XOR)
                        .getShuffleResult();
      x = isMax ? max(x, other) : add(x, other);
    }
    return x;
  }

  /// Copies rows [row0, row0 + 64) of src[n] (f32, `width` columns) into
  /// `tile` (64 x (width + kPad) halves), rounding to the format: each
  /// thread moves 4 floats at a time.
  void loadTile(Value src, Value n, Value row0, Value tile, int64_t width) {
    int64_t perRow = width / 4;
    auto f32x4 = VectorType::get({4}, f32());
    for (int64_t it = 0; it < kRows * perRow / kThreads; ++it) {
      Value e = add(tid, it * kThreads);
      Value r = div(e, perRow), c = mulIdx(rem(e, perRow), 4);
      Value x = vector::LoadOp::create(b, loc, f32x4, src,
                                       ValueRange{n, add(row0, r), c},
                                       /*nontemporal=*/false,
                                       llvm::MaybeAlign(16));
      vector::StoreOp::create(b, loc, half(x), tile, ValueRange{r, c},
                              /*nontemporal=*/false, llvm::MaybeAlign(8));
    }
  }

  /// ldmatrix.x4 of `tile` where this lane gives the row address
  /// (row, col).
  Value ldmatrix(Value tile, Value row, Value col, bool transpose) {
    return nvgpu::LdMatrixOp::create(
        b, loc, VectorType::get({4, 2}, f16()), tile, ValueRange{row, col},
        b.getBoolAttr(transpose), b.getI32IntegerAttr(4));
  }
  /// Rows {first, first + 1} of an x4 result: one B fragment. (Built row
  /// by row: a 2-D vector.extract_strided_slice is left unconverted by the
  /// lowering to NVVM.)
  Value bFragment(Value x4, int64_t first) {
    auto t = VectorType::get({2, 2}, f16());
    Value frag = ub::PoisonOp::create(b, loc, t);
    for (int64_t i = 0; i < 2; ++i)
      frag = vector::InsertOp::create(
          b, loc, vector::ExtractOp::create(b, loc, x4, first + i), frag, i);
    return frag;
  }
  Value mma(Value a, Value bm, Value c) {
    return nvgpu::MmaSyncOp::create(b, loc, a, bm, c,
                                    ArrayRef<int64_t>{16, 8, 16});
  }
  Value zeroC() {
    return arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(VectorType::get({2, 2}, f32()), 0.0f));
  }
  Value elem(Value frag, int64_t h, int64_t j) {
    return vector::ExtractOp::create(b, loc, frag, ArrayRef<int64_t>{h, j});
  }
  /// `x` (f32, scalar or vector) rounded to the format, as f16-typed bits.
  Value half(Value x) {
    auto as = [&](Type element) -> Type {
      if (auto v = dyn_cast<VectorType>(x.getType()))
        return v.clone(element);
      return element;
    };
    if (!bf16)
      return arith::TruncFOp::create(b, loc, as(f16()), x);
    Value h = arith::TruncFOp::create(b, loc, as(b.getBF16Type()), x);
    return arith::BitcastOp::create(b, loc, as(f16()), h);
  }
};

} // namespace

bool mmaAttentionApplies(RankedTensorType q, RankedTensorType k,
                         RankedTensorType v) {
  if (q.getRank() != 3 || !q.hasStaticShape() || !k.hasStaticShape() ||
      !v.hasStaticShape())
    return false;
  int64_t d = q.getDimSize(2), e = v.getDimSize(2);
  // Head dimensions: whole k-steps of 16 for S, pairs of n-tiles for O;
  // at most 128 (registers: Q fragments, O accumulators and S).
  return q.getDimSize(1) % kRows == 0 && k.getDimSize(1) % kKeys == 0 &&
         d % 16 == 0 && e % 16 == 0 && d <= 128 && e <= 128;
}

/// The attribute of the launch buildMmaAttention leaves for
/// expandMmaAttention: {scale, causal, format}.
constexpr llvm::StringLiteral kMmaAttentionAttr = "tessera.mma_attention";

FlashForward buildMmaAttention(OpBuilder &b, Location loc, Value q, Value k,
                               Value v, double scale, bool causal, bool withLse,
                               StringRef format) {
  auto qt = cast<RankedTensorType>(q.getType());
  auto vt = cast<RankedTensorType>(v.getType());
  int64_t batch = qt.getDimSize(0), queries = qt.getDimSize(1);
  Type f32 = b.getF32Type();
  auto buffer = [&](Value t) {
    auto tt = cast<RankedTensorType>(t.getType());
    return bufferization::ToBufferOp::create(
        b, loc, MemRefType::get(tt.getShape(), f32), t, /*readOnly=*/true);
  };
  Value qb = buffer(q), kb = buffer(k), vb = buffer(v);
  Value out = memref::AllocOp::create(
      b, loc, MemRefType::get({batch, queries, vt.getDimSize(2)}, f32));
  Value lse = withLse ? memref::AllocOp::create(
                            b, loc, MemRefType::get({batch, queries}, f32))
                      : Value();

  // The body stands in for the kernel until the buffers are final (the
  // deallocation passes reject barriers): it reads q, k, v and writes the
  // outputs, so that those passes see the kernel's uses of the buffers.
  // Input i is read at [0, 0, i], so that CSE keeps the reads apart when
  // q, k and v are one tensor.
  auto c = [&](int64_t x) { return arith::ConstantIndexOp::create(b, loc, x); };
  auto launch = gpu::LaunchOp::create(b, loc, c(queries / kRows), c(batch),
                                      c(1), c(kThreads), c(1), c(1));
  launch->setAttr(kMmaAttentionAttr,
                  b.getDictionaryAttr({
                      b.getNamedAttr("scale", b.getF64FloatAttr(scale)),
                      b.getNamedAttr("causal", b.getBoolAttr(causal)),
                      b.getNamedAttr("format", b.getStringAttr(format)),
                  }));
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&launch.getBody().front());
    Value zero = c(0), sum;
    std::array<Value, 3> inputs = {qb, kb, vb};
    for (auto [i, in] : llvm::enumerate(inputs)) {
      Value x = memref::LoadOp::create(b, loc, in,
                                       ValueRange{zero, zero, c(int64_t(i))});
      sum = sum ? arith::AddFOp::create(b, loc, sum, x).getResult() : x;
    }
    memref::StoreOp::create(b, loc, sum, out, ValueRange{zero, zero, zero});
    if (lse)
      memref::StoreOp::create(b, loc, sum, lse, ValueRange{zero, zero});
    gpu::TerminatorOp::create(b, loc);
  }

  auto tensorOf = [&](Value m) {
    auto mt = cast<MemRefType>(m.getType());
    return bufferization::ToTensorOp::create(
        b, loc, RankedTensorType::get(mt.getShape(), f32), m,
        /*restrict=*/true, /*writable=*/true);
  };
  return {tensorOf(out), withLse ? Value(tensorOf(lse)) : Value()};
}

LogicalResult expandMmaAttention(gpu::LaunchOp launch) {
  auto config = launch->getAttrOfType<DictionaryAttr>(kMmaAttentionAttr);
  if (!config)
    return success();
  launch->removeAttr(kMmaAttentionAttr);
  // The buffers, from the stand-in body: input i is read at [0, 0, i];
  // the output has rank 3, the log-sum-exp rank 2.
  Value in[3], out, lse;
  for (Operation &op : launch.getBody().front()) {
    if (auto load = dyn_cast<memref::LoadOp>(op)) {
      std::optional<int64_t> i = getConstantIntValue(load.getIndices().back());
      if (i && *i >= 0 && *i < 3)
        in[*i] = load.getMemRef();
    } else if (auto store = dyn_cast<memref::StoreOp>(op)) {
      (store.getMemRefType().getRank() == 3 ? out : lse) = store.getMemRef();
    }
  }
  if (!in[0] || !in[1] || !in[2] || !out)
    return launch.emitOpError("internal error: not an attention stand-in");
  Value qb = in[0], kb = in[1], vb = in[2];
  double scale = cast<FloatAttr>(config.get("scale")).getValueAsDouble();
  bool causal = cast<BoolAttr>(config.get("causal")).getValue();
  StringRef format = cast<StringAttr>(config.get("format")).getValue();
  int64_t keys = cast<MemRefType>(vb.getType()).getDimSize(1);
  int64_t d = cast<MemRefType>(qb.getType()).getDimSize(2);
  int64_t e = cast<MemRefType>(vb.getType()).getDimSize(2);

  Block &body = launch.getBody().front();
  while (!body.empty())
    body.back().erase();
  OpBuilder b(launch.getContext());
  Location loc = launch.getLoc();
  auto shared = gpu::AddressSpaceAttr::get(b.getContext(),
                                           gpu::AddressSpace::Workgroup);
  auto tileType = [&](int64_t width) {
    return MemRefType::get({kKeys, width + kPad}, b.getF16Type(),
                           MemRefLayoutAttrInterface(), shared);
  };
  Value kTile = launch.addWorkgroupAttribution(tileType(d), loc);
  Value vTile = launch.addWorkgroupAttribution(tileType(e), loc);
  b.setInsertionPointToStart(&body);
  {
    Kernel kr{b, loc, format == "bf16", {}, {}, {}};
    kr.tid = launch.getThreadIds().x;
    kr.lane = kr.rem(kr.tid, 32);
    kr.warp = kr.div(kr.tid, 32);
    Value qTile = launch.getBlockIds().x, n = launch.getBlockIds().y;
    Value q0 = kr.mulIdx(qTile, kRows);
    Value lane = kr.lane, g = kr.div(lane, 4), t4 = kr.rem(lane, 4);
    Value lane8 = kr.rem(lane, 8), lane16 = kr.rem(lane, 16);
    Value half16 = kr.mulIdx(kr.div(lane, 16), 8);          // (l/16)*8
    Value quarter8 = kr.mulIdx(kr.rem(kr.div(lane, 8), 2), 8); // ((l/8)%2)*8
    Value warpRow = kr.mulIdx(kr.warp, kWarpRows);

    // Q: through the K tile into A fragments, one per 16 columns.
    kr.loadTile(qb, n, q0, kTile, d);
    kr.barrier();
    SmallVector<Value> qa;
    for (int64_t kk = 0; kk < d / 16; ++kk)
      qa.push_back(kr.ldmatrix(kTile, kr.add(warpRow, lane16),
                               kr.add(half16, kk * 16), false));
    kr.barrier();

    // Keys tile by tile; with `causal`, up to the block's diagonal tile.
    Value end = kr.index(keys / kKeys);
    if (causal)
      end = arith::MinUIOp::create(b, loc, kr.add(qTile, 1), end);
    double inf = std::numeric_limits<double>::infinity();
    SmallVector<Value> init = {kr.cst(-inf), kr.cst(-inf), kr.cst(0),
                               kr.cst(0)};
    for (int64_t dt = 0; dt < e / 8; ++dt)
      init.push_back(kr.zeroC());
    // Each thread's rows: g and g + 8 of its warp's 16.
    Value myRow[2] = {kr.add(q0, kr.add(warpRow, g)),
                      kr.add(q0, kr.add(warpRow, kr.add(g, 8)))};
    auto loop = scf::ForOp::create(
        b, loc, kr.index(0), end, kr.index(1), init,
        [&](OpBuilder &, Location, Value kt, ValueRange a) {
          Value k0 = kr.mulIdx(kt, kKeys);
          kr.loadTile(kb, n, k0, kTile, d);
          kr.loadTile(vb, n, k0, vTile, e);
          kr.barrier();

          // S = Q K^T: 8 n-tiles of 8 keys.
          SmallVector<Value> s(kKeys / 8);
          for (Value &x : s)
            x = kr.zeroC();
          for (int64_t kk = 0; kk < d / 16; ++kk)
            for (int64_t np = 0; np < kKeys / 16; ++np) {
              Value bk = kr.ldmatrix(
                  kTile, kr.add(kr.add(half16, lane8), np * 16),
                  kr.add(quarter8, kk * 16), false);
              s[2 * np] = kr.mma(qa[kk], kr.bFragment(bk, 0), s[2 * np]);
              s[2 * np + 1] =
                  kr.mma(qa[kk], kr.bFragment(bk, 2), s[2 * np + 1]);
            }

          // Scale and mask; x[nt][h][j] is row myRow[h], key
          // k0 + 8 nt + 2 t4 + j.
          Value keyBase = kr.add(k0, kr.mulIdx(t4, 2));
          SmallVector<std::array<std::array<Value, 2>, 2>> x(s.size());
          for (auto [nt, frag] : llvm::enumerate(s))
            for (int64_t h = 0; h < 2; ++h)
              for (int64_t j = 0; j < 2; ++j) {
                Value val = kr.mul(kr.elem(frag, h, j), kr.cst(scale));
                if (causal) {
                  Value key = kr.add(keyBase, int64_t(nt) * 8 + j);
                  Value future = arith::CmpIOp::create(
                      b, loc, arith::CmpIPredicate::ugt, key, myRow[h]);
                  val = arith::SelectOp::create(b, loc, future, kr.cst(-inf),
                                                val);
                }
                x[nt][h][j] = val;
              }

          // Online softmax per row.
          SmallVector<Value> next(a.begin(), a.end());
          Value corr[2];
          for (int64_t h = 0; h < 2; ++h) {
            Value mx;
            for (auto &col : x)
              for (Value val : col[h])
                mx = mx ? kr.max(mx, val) : val;
            mx = kr.quadReduce(mx, /*isMax=*/true);
            Value mNew = kr.max(a[h], mx);
            corr[h] = kr.exp(kr.sub(a[h], mNew));
            Value sum = kr.mul(a[2 + h], corr[h]);
            for (auto &col : x)
              for (Value &val : col[h]) {
                val = kr.exp(kr.sub(val, mNew));
                sum = kr.add(sum, val);
              }
            next[h] = mNew;
            next[2 + h] = sum;
          }

          // O = O c + P V: P's fragments for 16 keys at a time are the A
          // fragments of the product.
          auto cType = VectorType::get({2, 2}, kr.f32());
          Value scaleC = vector::FromElementsOp::create(
              b, loc, cType, ValueRange{corr[0], corr[0], corr[1], corr[1]});
          SmallVector<Value> o;
          for (int64_t dt = 0; dt < e / 8; ++dt)
            o.push_back(kr.mul(a[4 + dt], scaleC));
          auto aType = VectorType::get({4, 2}, kr.f16());
          for (int64_t kk = 0; kk < kKeys / 16; ++kk) {
            SmallVector<Value> p;
            for (int64_t half = 0; half < 2; ++half)
              for (int64_t h = 0; h < 2; ++h)
                for (int64_t j = 0; j < 2; ++j)
                  p.push_back(kr.half(x[2 * kk + half][h][j]));
            Value pa = vector::FromElementsOp::create(b, loc, aType, p);
            for (int64_t dp = 0; dp < e / 16; ++dp) {
              Value bv = kr.ldmatrix(
                  vTile, kr.add(kr.add(quarter8, lane8), kk * 16),
                  kr.add(half16, dp * 16), true);
              o[2 * dp] = kr.mma(pa, kr.bFragment(bv, 0), o[2 * dp]);
              o[2 * dp + 1] = kr.mma(pa, kr.bFragment(bv, 2), o[2 * dp + 1]);
            }
          }
          llvm::copy(o, next.begin() + 4);
          // The next tile overwrites K and V.
          kr.barrier();
          scf::YieldOp::create(b, loc, next);
        });

    // O / l and the log-sum-exp m + log(l).
    Value col = kr.mulIdx(t4, 2);
    auto f32x2 = VectorType::get({2}, kr.f32());
    for (int64_t h = 0; h < 2; ++h) {
      Value l = kr.quadReduce(loop.getResult(2 + h), /*isMax=*/false);
      Value inv = arith::DivFOp::create(b, loc, kr.cst(1.0), l);
      Value invV = vector::BroadcastOp::create(b, loc, f32x2, inv);
      for (int64_t dt = 0; dt < e / 8; ++dt) {
        Value row = vector::ExtractOp::create(b, loc, loop.getResult(4 + dt), h);
        vector::StoreOp::create(b, loc, kr.mul(row, invV), out,
                                ValueRange{n, myRow[h], kr.add(col, dt * 8)},
                                /*nontemporal=*/false, llvm::MaybeAlign(8));
      }
      if (lse) {
        Value first = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                                            t4, kr.index(0));
        auto ifOp = scf::IfOp::create(b, loc, first, /*withElseRegion=*/false);
        OpBuilder::InsertionGuard inner(b);
        b.setInsertionPointToStart(&ifOp.getThenRegion().front());
        Value logSumExp = kr.add(loop.getResult(h),
                                 math::LogOp::create(b, loc, l).getResult());
        memref::StoreOp::create(b, loc, logSumExp, lse, ValueRange{n, myRow[h]});
      }
    }
    gpu::TerminatorOp::create(b, loc);
  }
  if (format == "bf16")
    return retypeMmaToBF16(launch);
  return success();
}

} // namespace tessera
