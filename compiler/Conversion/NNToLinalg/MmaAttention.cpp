//===- MmaAttention.cpp - Flash attention on tensor cores -----------------===//
//
// Attention and its gradients as GPU kernels whose products run on tensor
// cores (mma.sync m16n8k16), in the manner of FlashAttention-2.
//
// Every kernel is a block of 4 warps that owns 64 rows (of queries, or of
// keys for dk/dv) of one (batch, head); each warp owns 16 of them, whose
// operand fragments it loads once (ldmatrix from shared memory). The block
// then walks the other sequence 64 rows at a time: it copies those tiles
// into shared memory (f32 rounded to bf16/f16, or bf16/f16 operands as
// they are, which may be [B, T, H, D] views of a projection) and each
// warp multiplies
//
//   rows x tile^T   A = the warp's fragments, B = tile rows by ldmatrix
//   X x tile        A = X's accumulator fragments rounded to the format,
//                   B = the tile by ldmatrix.trans
//
// The forward pass, per query block and key tile:
//
//   S = Q K^T,  online softmax on S's fragments (a thread holds 2 rows x
//   16 columns: the row max and sum take two quad shuffles), O = O c + P V;
//   at the end O / l and L = m + log(l)
//
// The gradients, with P recomputed from L and D = rowsum(dO o O):
//
//   dq kernel, per query block, over key tiles:
//     S = Q K^T, dP = dO V^T, dS = P (dP - D), dQ += dS K
//   dk/dv kernel, per key block, over query tiles (transposed products):
//     S^T = K Q^T, dV += P^T dO, dP^T = V dO^T, dS^T = P^T (dP^T - D),
//     dK += dS^T Q
//     (a dk kernel and a dv kernel apart when the heads are wide)
//
// dQ and dK are scaled once at the end. Exponentials are base 2 (ex2 on
// the SFU), on scores times scale log2(e). Shared-memory rows are padded
// by 8 halves so that the 8 rows an ldmatrix reads fall in distinct banks.
//
// The kernels are built in two steps: before bufferization, a gpu.launch
// whose body only stands in for the kernel (it reads every input and
// writes every output; the deallocation passes reject barriers); after
// it, expandMmaAttention replaces that body by the kernel.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/MmaUtils.h"
#include "compiler/Conversion/NNToLinalg/FlashAttention.h"
#include "compiler/Conversion/NNToLinalg/StandIn.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
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

/// Rows per block and per warp, rows per tile of the other sequence,
/// threads per block.
constexpr int64_t kRows = 64, kWarpRows = 16, kTile = 64, kThreads = 128;
static_assert(kRows == kTile, "a block's own rows pass through a tile");
/// Halves of padding after each shared-memory row.
constexpr int64_t kPad = 8;
/// The widest k + v heads whose dK and dV accumulate in one kernel; wider
/// ones get a dk kernel and a dv kernel (each recomputes S).
constexpr int64_t kMaxFusedKV = 128;
constexpr double kLog2E = 1.4426950408889634, kLn2 = 0.6931471805599453;

/// The elements of a warp's 16 x 64 accumulator tile held by one thread:
/// [nt][h][j] is row g + 8 h, column 8 nt + 2 t4 + j (g = lane / 4,
/// t4 = lane % 4).
using Elements = SmallVector<std::array<std::array<Value, 2>, 2>>;

/// The builders of the kernel bodies. Fragments are nvgpu's: A is
/// vector<4x2xf16>, B vector<2x2xf16>, C vector<2x2xf32>; bf16 bits travel
/// in f16 vectors (retypeMmaToBF16 gives the mma its real type).
struct Kernel {
  OpBuilder &b;
  Location loc;
  bool bf16;
  /// Thread, lane and warp; the lane's row g and column pair t4 in
  /// accumulator fragments; the row and column a lane gives ldmatrix.
  Value tid, lane, warp, g, t4, lane8, lane16, half16, quarter8, warpRow;

  Kernel(OpBuilder &b, Location loc, bool bf16, Value threadId)
      : b(b), loc(loc), bf16(bf16), tid(threadId) {
    lane = rem(tid, 32);
    warp = div(tid, 32);
    g = div(lane, 4);
    t4 = rem(lane, 4);
    lane8 = rem(lane, 8);
    lane16 = rem(lane, 16);
    half16 = mulIdx(div(lane, 16), 8);           // (lane / 16) * 8
    quarter8 = mulIdx(rem(div(lane, 8), 2), 8); // ((lane / 8) % 2) * 8
    warpRow = mulIdx(warp, kWarpRows);
  }

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
  /// 2^x by the SFU (`ex2.approx.ftz.f32`: one instruction, relative
  /// error about 2^-22; math.exp would become a polynomial of some 20).
  /// The kernels work in base 2: scores times scale log2(e).
  Value exp2(Value x) {
    return LLVM::InlineAsmOp::create(
               b, loc, f32(), ValueRange{x}, "ex2.approx.ftz.f32 $0, $1;",
               "=f,f", /*has_side_effects=*/false, /*is_align_stack=*/false,
               LLVM::tailcallkind::TailCallKind::None, LLVM::AsmDialectAttr(),
               ArrayAttr())
        .getResult(0);
  }
  /// x c - y in one instruction (an LLVM intrinsic: math.fma would be
  /// expanded into a multiply and an add).
  Value fms(Value x, double c, Value y) {
    return LLVM::FMAOp::create(b, loc, x, cst(c),
                               arith::NegFOp::create(b, loc, y));
  }
  /// a - b of two indices, as an i32: the causal masks compare it with
  /// each element's constant column offset instead of computing every
  /// element's index in 64 bits.
  Value gap(Value a, Value x) {
    return arith::IndexCastOp::create(
        b, loc, b.getI32Type(), arith::SubIOp::create(b, loc, a, x));
  }
  /// gap(own[h], base) for both of a thread's rows, when `causal`.
  std::array<Value, 2> gaps(std::array<Value, 2> own, Value base,
                            bool causal) {
    if (!causal)
      return {};
    return {gap(own[0], base), gap(own[1], base)};
  }
  /// Whether the constant c compares with the i32 `gap` as `pred`.
  Value constVs(int64_t c, arith::CmpIPredicate pred, Value gap) {
    Value cv = arith::ConstantOp::create(b, loc, b.getI32IntegerAttr(c));
    return arith::CmpIOp::create(b, loc, pred, cv, gap);
  }
  Value lessThan(Value x, Value y) {
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, x, y);
  }
  Value select(Value c, Value x, Value y) {
    return arith::SelectOp::create(b, loc, c, x, y);
  }
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
  /// Runs `body` in thread t4 == 0 of each quad only.
  void inFirstOfQuad(function_ref<void()> body) {
    Value first = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, t4,
                                        index(0));
    auto ifOp = scf::IfOp::create(b, loc, first, /*withElseRegion=*/false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    body();
  }

  /// A shared-memory tile: kTile rows of `width` halves, padded.
  static MemRefType tileType(MLIRContext *ctx, int64_t width) {
    auto shared =
        gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
    return MemRefType::get({kTile, width + kPad}, Float16Type::get(ctx),
                           MemRefLayoutAttrInterface(), shared);
  }

  /// The indices of element (n, row, col) of a global operand: [N, T, C]
  /// with n = batch x head, or [B, T, H, C] with n = b H + h (the heads'
  /// layout before they are split off, read in place).
  SmallVector<Value> rowAt(Value m, Value n, Value row, Value col) {
    auto t = cast<MemRefType>(m.getType());
    if (t.getRank() == 3)
      return {n, row, col};
    int64_t heads = t.getDimSize(2);
    return {div(n, heads), row, rem(n, heads), col};
  }
  /// The alignment of `count` consecutive elements from a column that is
  /// a multiple of `count`: their size when the layout keeps every row
  /// start a multiple of it, the element's otherwise.
  static llvm::MaybeAlign rowAlign(Value m, int64_t count) {
    auto t = cast<MemRefType>(m.getType());
    int64_t bytes = t.getElementTypeBitWidth() / 8;
    SmallVector<int64_t> strides;
    int64_t offset;
    if (failed(t.getStridesAndOffset(strides, offset)) ||
        strides.back() != 1 || ShapedType::isDynamic(offset) ||
        offset % count != 0 ||
        llvm::any_of(ArrayRef(strides).drop_back(), [&](int64_t s) {
          return ShapedType::isDynamic(s) || s % count != 0;
        }))
      return llvm::MaybeAlign(bytes);
    return llvm::MaybeAlign(bytes * count);
  }
  /// `count` consecutive elements of m from (n, row, col), as f32.
  Value loadF32(Value m, Value n, Value row, Value col, int64_t count) {
    Type element = cast<MemRefType>(m.getType()).getElementType();
    Value x = vector::LoadOp::create(b, loc, VectorType::get({count}, element),
                                     m, rowAt(m, n, row, col),
                                     /*nontemporal=*/false,
                                     rowAlign(m, count));
    if (element.isF32())
      return x;
    if (bf16)
      x = arith::BitcastOp::create(
          b, loc, VectorType::get({count}, b.getBF16Type()), x);
    return arith::ExtFOp::create(b, loc, VectorType::get({count}, f32()), x);
  }

  /// Copies rows [row0, row0 + 64) of src[n] (`width` columns) into
  /// `tile`: f32 rounded to the format, 4 floats per thread at a time, or
  /// halves of the format as they are, 8 at a time.
  void loadTile(Value src, Value n, Value row0, Value tile, int64_t width) {
    bool halves = !cast<MemRefType>(src.getType()).getElementType().isF32();
    int64_t vec = halves ? 8 : 4, perRow = width / vec;
    auto type = VectorType::get({vec}, halves ? f16() : f32());
    for (int64_t it = 0; it < kTile * perRow / kThreads; ++it) {
      Value e = add(tid, it * kThreads);
      Value r = div(e, perRow), c = mulIdx(rem(e, perRow), vec);
      Value x = vector::LoadOp::create(b, loc, type, src,
                                       rowAt(src, n, add(row0, r), c),
                                       /*nontemporal=*/false,
                                       rowAlign(src, vec));
      vector::StoreOp::create(b, loc, halves ? x : half(x), tile,
                              ValueRange{r, c}, /*nontemporal=*/false,
                              llvm::MaybeAlign(2 * vec));
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

  /// The A fragments of this warp's 16 rows of `tile`, one per 16 of its
  /// `width` columns.
  SmallVector<Value> rowFragments(Value tile, int64_t width) {
    SmallVector<Value> frags;
    for (int64_t kk = 0; kk < width / 16; ++kk)
      frags.push_back(ldmatrix(tile, add(warpRow, lane16),
                               add(half16, kk * 16), /*transpose=*/false));
    return frags;
  }

  /// Rows [row0, row0 + 64) of x[n] and y[n] (widths xw and yw) through
  /// two tiles into this warp's A fragments of both (of x only when y is
  /// null); the tiles are free again afterwards.
  std::pair<SmallVector<Value>, SmallVector<Value>>
  ownFragments(Value x, Value xTile, int64_t xw, Value y, Value yTile,
               int64_t yw, Value n, Value row0) {
    loadTile(x, n, row0, xTile, xw);
    if (y)
      loadTile(y, n, row0, yTile, yw);
    barrier();
    std::pair<SmallVector<Value>, SmallVector<Value>> frags;
    frags.first = rowFragments(xTile, xw);
    if (y)
      frags.second = rowFragments(yTile, yw);
    barrier();
    return frags;
  }

  /// (16 rows) x tile^T for the tile rows [row0, row0 + rows): `a` are A
  /// fragments over the tile's columns; the result is the thread's
  /// elements of the 16 x rows product.
  Elements timesTileT(ArrayRef<Value> a, Value tile, int64_t row0 = 0,
                      int64_t rows = kTile) {
    SmallVector<Value> acc(rows / 8);
    for (Value &x : acc)
      x = zeroC();
    for (auto [kk, frag] : llvm::enumerate(a))
      for (int64_t np = 0; np < rows / 16; ++np) {
        Value x4 = ldmatrix(tile, add(add(half16, lane8), row0 + np * 16),
                            add(quarter8, int64_t(kk) * 16), false);
        acc[2 * np] = mma(frag, bFragment(x4, 0), acc[2 * np]);
        acc[2 * np + 1] = mma(frag, bFragment(x4, 2), acc[2 * np + 1]);
      }
    Elements x(acc.size());
    for (auto [nt, frag] : llvm::enumerate(acc))
      for (int64_t h = 0; h < 2; ++h)
        for (int64_t j = 0; j < 2; ++j)
          x[nt][h][j] = vector::ExtractOp::create(b, loc, frag,
                                                  ArrayRef<int64_t>{h, j});
    return x;
  }

  /// acc += X tile[row0 : row0 + 8 x.size()], X being 16 x (8 x.size())
  /// elements (rounded to the format: the accumulator fragments of 16
  /// columns are the A fragment of 16 k) and `acc` the accumulators of 8
  /// of the tile's columns each.
  void accumulateTimesTile(const Elements &x, Value tile,
                           MutableArrayRef<Value> acc, int64_t row0 = 0) {
    auto aType = VectorType::get({4, 2}, f16());
    for (int64_t kk = 0; kk < int64_t(x.size()) / 2; ++kk) {
      SmallVector<Value> elems;
      for (int64_t half = 0; half < 2; ++half)
        for (int64_t h = 0; h < 2; ++h)
          for (int64_t j = 0; j < 2; ++j)
            elems.push_back(this->half(x[2 * kk + half][h][j]));
      Value a = vector::FromElementsOp::create(b, loc, aType, elems);
      for (int64_t dp = 0; dp < int64_t(acc.size()) / 2; ++dp) {
        Value x4 = ldmatrix(tile, add(add(quarter8, lane8), row0 + kk * 16),
                            add(half16, dp * 16), /*transpose=*/true);
        acc[2 * dp] = mma(a, bFragment(x4, 0), acc[2 * dp]);
        acc[2 * dp + 1] = mma(a, bFragment(x4, 2), acc[2 * dp + 1]);
      }
    }
  }

  /// The rows this thread holds in accumulator fragments, g and g + 8 of
  /// its warp's 16, in the block's rows from row0 on.
  std::array<Value, 2> ownRows(Value row0) {
    Value first = add(row0, add(warpRow, g));
    return {first, add(first, 8)};
  }

  /// The end of the loop over the other sequence's `tiles` tiles: with
  /// `causal`, the tile after the block's diagonal one (query block qt
  /// sees key tiles 0..qt).
  Value loopEnd(Value blockTile, int64_t tiles, bool causal) {
    Value end = index(tiles);
    if (!causal)
      return end;
    return arith::MinUIOp::create(b, loc, add(blockTile, 1), end);
  }

  /// Zero accumulators for a 16 x width product.
  SmallVector<Value> zeroAccumulators(int64_t width) {
    SmallVector<Value> acc;
    for (int64_t dt = 0; dt < width / 8; ++dt)
      acc.push_back(zeroC());
    return acc;
  }

  /// Stores accumulators as this warp's 16 rows of dst[n] from `row0` on,
  /// 2 elements at a time (f32, or rounded to the format in an f16-typed
  /// dst; rowAt gives the layout); the thread's row g + 8 h times
  /// factor[h] (an f32) unless that is null.
  void storeRows(ArrayRef<Value> acc, std::array<Value, 2> factor, Value dst,
                 Value n, Value row0) {
    auto f32x2 = VectorType::get({2}, f32());
    bool halves = !cast<MemRefType>(dst.getType()).getElementType().isF32();
    std::array<Value, 2> rows = ownRows(row0);
    for (int64_t h = 0; h < 2; ++h) {
      Value f = factor[h]
                    ? vector::BroadcastOp::create(b, loc, f32x2, factor[h])
                    : Value();
      for (auto [dt, frag] : llvm::enumerate(acc)) {
        Value row = vector::ExtractOp::create(b, loc, frag, h);
        if (f)
          row = mul(row, f);
        if (halves)
          row = half(row);
        vector::StoreOp::create(
            b, loc, row, dst,
            rowAt(dst, n, rows[h], add(mulIdx(t4, 2), int64_t(dt) * 8)),
            /*nontemporal=*/false, rowAlign(dst, 2));
      }
    }
  }
  /// Both rows times the constant `c`, for storeRows.
  std::array<Value, 2> uniform(double c) { return {cst(c), cst(c)}; }
};

/// The attribute of a stand-in launch: {kernel, scale, causal, format}.
constexpr llvm::StringLiteral kMmaAttentionAttr = "tessera.mma_attention";

/// A stand-in (StandIn.h) for one of the kernels below: a grid of
/// gridX x gridY blocks of kThreads threads.
void standIn(OpBuilder &b, Location loc, int64_t gridX, int64_t gridY,
             ArrayRef<Value> inputs, ArrayRef<Value> outputs,
             DictionaryAttr config) {
  buildStandIn(b, loc, gridX, gridY, kThreads, inputs, outputs,
               kMmaAttentionAttr, config);
}

struct Config {
  double scale;
  bool causal;
};

/// What every kernel starts with: the head widths d (q, k) and e (v),
/// two shared tiles d and e halves wide, the block's tile index and batch
/// index (its grid position), and its first row.
struct BlockStart {
  int64_t d, e;
  Value dTile, eTile, tile, n, row0;
};
BlockStart startBlock(Kernel &kr, gpu::LaunchOp launch, Value q, Value v) {
  BlockStart s;
  s.d = cast<MemRefType>(q.getType()).getShape().back();
  s.e = cast<MemRefType>(v.getType()).getShape().back();
  MLIRContext *ctx = kr.b.getContext();
  s.dTile = launch.addWorkgroupAttribution(Kernel::tileType(ctx, s.d), kr.loc);
  s.eTile = launch.addWorkgroupAttribution(Kernel::tileType(ctx, s.e), kr.loc);
  s.tile = launch.getBlockIds().x;
  s.n = launch.getBlockIds().y;
  s.row0 = kr.mulIdx(s.tile, kRows);
  return s;
}

/// The forward kernel: inputs q, k, v; outputs out and, optionally, lse.
void buildForwardKernel(Kernel &kr, gpu::LaunchOp launch, ArrayRef<Value> in,
                        ArrayRef<Value> out, Config cfg) {
  OpBuilder &b = kr.b;
  Location loc = kr.loc;
  Value qb = in[0], kb = in[1], vb = in[2];
  int64_t keys = cast<MemRefType>(vb.getType()).getDimSize(1);
  BlockStart bs = startBlock(kr, launch, qb, vb);
  int64_t d = bs.d, e = bs.e;
  Value kShared = bs.dTile, vShared = bs.eTile;
  Value qt = bs.tile, n = bs.n, q0 = bs.row0;

  // Q: through the K tile into A fragments.
  kr.loadTile(qb, n, q0, kShared, d);
  kr.barrier();
  SmallVector<Value> qa = kr.rowFragments(kShared, d);
  kr.barrier();

  // Keys tile by tile; with `causal`, up to the block's diagonal tile.
  Value end = kr.loopEnd(qt, keys / kTile, cfg.causal);
  double inf = std::numeric_limits<double>::infinity();
  SmallVector<Value> init = {kr.cst(-inf), kr.cst(-inf), kr.cst(0),
                             kr.cst(0)};
  llvm::append_range(init, kr.zeroAccumulators(e));
  std::array<Value, 2> myRow = kr.ownRows(q0);
  auto loop = scf::ForOp::create(
      b, loc, kr.index(0), end, kr.index(1), init,
      [&](OpBuilder &, Location, Value kt, ValueRange a) {
        Value k0 = kr.mulIdx(kt, kTile);
        kr.loadTile(kb, n, k0, kShared, d);
        kr.loadTile(vb, n, k0, vShared, e);
        kr.barrier();

        // Scaled and masked scores.
        Elements x = kr.timesTileT(qa, kShared);
        // Key keyBase + c is in the future of row r if c > r - keyBase.
        Value keyBase = kr.add(k0, kr.mulIdx(kr.t4, 2));
        std::array<Value, 2> rowGap = kr.gaps(myRow, keyBase, cfg.causal);
        for (auto [nt, col] : llvm::enumerate(x))
          for (int64_t h = 0; h < 2; ++h)
            for (int64_t j = 0; j < 2; ++j) {
              Value &val = col[h][j];
              val = kr.mul(val, kr.cst(cfg.scale * kLog2E));
              if (cfg.causal)
                val = kr.select(kr.constVs(int64_t(nt) * 8 + j,
                                           arith::CmpIPredicate::sgt,
                                           rowGap[h]),
                                kr.cst(-inf), val);
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
          corr[h] = kr.exp2(kr.sub(a[h], mNew));
          Value sum = kr.mul(a[2 + h], corr[h]);
          for (auto &col : x)
            for (Value &val : col[h]) {
              val = kr.exp2(kr.sub(val, mNew));
              sum = kr.add(sum, val);
            }
          next[h] = mNew;
          next[2 + h] = sum;
        }

        // O = O c + P V.
        auto cType = VectorType::get({2, 2}, kr.f32());
        Value scaleC = vector::FromElementsOp::create(
            b, loc, cType, ValueRange{corr[0], corr[0], corr[1], corr[1]});
        MutableArrayRef<Value> o(next.begin() + 4, next.end());
        for (Value &acc : o)
          acc = kr.mul(acc, scaleC);
        kr.accumulateTimesTile(x, vShared, o);
        // The next tile overwrites K and V.
        kr.barrier();
        scf::YieldOp::create(b, loc, next);
      });

  // O / l and the log-sum-exp m + log(l).
  std::array<Value, 2> inv;
  for (int64_t h = 0; h < 2; ++h) {
    Value l = kr.quadReduce(loop.getResult(2 + h), /*isMax=*/false);
    inv[h] = arith::DivFOp::create(b, loc, kr.cst(1.0), l);
    if (out.size() > 1)
      kr.inFirstOfQuad([&] {
        // m is in base 2.
        Value logSumExp = kr.add(kr.mul(loop.getResult(h), kr.cst(kLn2)),
                                 math::LogOp::create(b, loc, l).getResult());
        memref::StoreOp::create(b, loc, logSumExp, out[1],
                                ValueRange{n, myRow[h]});
      });
  }
  kr.storeRows(SmallVector<Value>(loop.getResults().drop_front(4)), inv, out[0],
               n, q0);
}

/// The dq kernel: inputs g, q, k, v, o, lse; outputs dq and D = rowsum(g o).
void buildGradQKernel(Kernel &kr, gpu::LaunchOp launch, ArrayRef<Value> in,
                      ArrayRef<Value> out, Config cfg) {
  OpBuilder &b = kr.b;
  Location loc = kr.loc;
  Value gb = in[0], qb = in[1], kb = in[2], vb = in[3], ob = in[4],
        lseb = in[5];
  Value dq = out[0], delta = out[1];
  int64_t keys = cast<MemRefType>(vb.getType()).getDimSize(1);
  // Q, then K tiles; dO, then V tiles.
  BlockStart bs = startBlock(kr, launch, qb, vb);
  int64_t d = bs.d, e = bs.e;
  Value dTile = bs.dTile, eTile = bs.eTile;
  Value qt = bs.tile, n = bs.n, q0 = bs.row0;

  SmallVector<Value> qa, ga;
  std::tie(qa, ga) = kr.ownFragments(qb, dTile, d, gb, eTile, e, n, q0);

  // Each thread's rows, their log-sum-exp and D (in f32, from the
  // fragment-shaped pieces of g and o the thread reads).
  std::array<Value, 2> myRow = kr.ownRows(q0);
  Value lse[2], dRow[2];
  for (int64_t h = 0; h < 2; ++h) {
    // In base 2, as the scores.
    lse[h] = kr.mul(
        memref::LoadOp::create(b, loc, lseb, ValueRange{n, myRow[h]}),
        kr.cst(kLog2E));
    Value sum;
    for (int64_t dt = 0; dt < e / 8; ++dt) {
      Value col = kr.add(kr.mulIdx(kr.t4, 2), dt * 8);
      Value prod = kr.mul(kr.loadF32(gb, n, myRow[h], col, 2),
                          kr.loadF32(ob, n, myRow[h], col, 2));
      sum = sum ? kr.add(sum, prod) : prod;
    }
    Value partial = vector::ReductionOp::create(
        b, loc, vector::CombiningKind::ADD, sum);
    dRow[h] = kr.quadReduce(partial, /*isMax=*/false);
    kr.inFirstOfQuad([&] {
      memref::StoreOp::create(b, loc, dRow[h], delta, ValueRange{n, myRow[h]});
    });
  }

  Value end = kr.loopEnd(qt, keys / kTile, cfg.causal);
  auto loop = scf::ForOp::create(
      b, loc, kr.index(0), end, kr.index(1), kr.zeroAccumulators(d),
      [&](OpBuilder &, Location, Value kt, ValueRange a) {
        Value k0 = kr.mulIdx(kt, kTile);
        kr.loadTile(kb, n, k0, dTile, d);
        kr.loadTile(vb, n, k0, eTile, e);
        kr.barrier();
        // 16 keys at a time (no row statistic spans the tile, and the
        // products of a slab need fewer registers than the tile's):
        // dS = P (dP - D), P = exp(S scale - L) (0 where masked), then
        // dQ += dS K.
        SmallVector<Value> acc(a.begin(), a.end());
        for (int64_t slab = 0; slab < kTile; slab += 16) {
          Elements s = kr.timesTileT(qa, dTile, slab, 16);
          Elements dp = kr.timesTileT(ga, eTile, slab, 16);
          Value keyBase = kr.add(k0, kr.add(kr.mulIdx(kr.t4, 2), slab));
          std::array<Value, 2> rowGap = kr.gaps(myRow, keyBase, cfg.causal);
          for (auto [nt, col] : llvm::enumerate(s))
            for (int64_t h = 0; h < 2; ++h)
              for (int64_t j = 0; j < 2; ++j) {
                Value p =
                    kr.exp2(kr.fms(col[h][j], cfg.scale * kLog2E, lse[h]));
                if (cfg.causal)
                  p = kr.select(kr.constVs(int64_t(nt) * 8 + j,
                                           arith::CmpIPredicate::sgt,
                                           rowGap[h]),
                                kr.cst(0), p);
                col[h][j] = kr.mul(p, kr.sub(dp[nt][h][j], dRow[h]));
              }
          kr.accumulateTimesTile(s, dTile, acc, slab);
        }
        kr.barrier();
        scf::YieldOp::create(b, loc, acc);
      });
  kr.storeRows(SmallVector<Value>(loop.getResults()), kr.uniform(cfg.scale), dq,
               n, q0);
}

/// The dk/dv kernel: inputs g, q, k, v, lse, D; outputs dk and dv, or
/// only one of them (`wantK`, `wantV`): with wide heads the accumulators
/// of both would not fit in registers.
void buildGradKVKernel(Kernel &kr, gpu::LaunchOp launch, ArrayRef<Value> in,
                       ArrayRef<Value> out, Config cfg, bool wantK,
                       bool wantV) {
  OpBuilder &b = kr.b;
  Location loc = kr.loc;
  Value gb = in[0], qb = in[1], kb = in[2], vb = in[3], lseb = in[4],
        deltab = in[5];
  int64_t queries = cast<MemRefType>(qb.getType()).getDimSize(1);
  // K, then Q tiles; V, then dO tiles.
  BlockStart bs = startBlock(kr, launch, qb, vb);
  int64_t d = bs.d, e = bs.e;
  Value dTile = bs.dTile, eTile = bs.eTile;
  Value kt = bs.tile, n = bs.n, k0 = bs.row0;
  // Row 0: the log-sum-exp of the tile's queries; row 1: their D.
  auto shared = gpu::AddressSpaceAttr::get(b.getContext(),
                                           gpu::AddressSpace::Workgroup);
  Value stats = launch.addWorkgroupAttribution(
      MemRefType::get({2, kTile}, kr.f32(), MemRefLayoutAttrInterface(),
                      shared),
      loc);

  SmallVector<Value> ka, va;
  // V's fragments are for dP^T, which only dK needs.
  std::tie(ka, va) = kr.ownFragments(kb, dTile, d, wantK ? vb : Value(), eTile,
                                     e, n, k0);

  std::array<Value, 2> myKey = kr.ownRows(k0);
  // With `causal`, query tiles from the block's diagonal one on.
  Value begin = cfg.causal ? kt : kr.index(0);
  // dK's accumulators, then dV's.
  int64_t numK = wantK ? d / 8 : 0;
  SmallVector<Value> init = kr.zeroAccumulators(numK * 8);
  llvm::append_range(init, kr.zeroAccumulators(wantV ? e : 0));
  auto f32x2 = VectorType::get({2}, kr.f32());
  auto loop = scf::ForOp::create(
      b, loc, begin, kr.index(queries / kTile), kr.index(1), init,
      [&](OpBuilder &, Location, Value qt, ValueRange a) {
        Value q0 = kr.mulIdx(qt, kTile);
        kr.loadTile(qb, n, q0, dTile, d);
        kr.loadTile(gb, n, q0, eTile, e);
        // The first 64 threads copy L, the others D.
        Value col = kr.rem(kr.tid, kTile);
        auto ifOp = scf::IfOp::create(b, loc, kr.lessThan(kr.tid, kr.index(kTile)),
                                      /*withElseRegion=*/true);
        for (auto [row, src] : llvm::enumerate(std::array{lseb, deltab})) {
          OpBuilder::InsertionGuard guard(b);
          b.setInsertionPointToStart(row ? ifOp.elseBlock() : ifOp.thenBlock());
          Value x = memref::LoadOp::create(b, loc, src,
                                           ValueRange{n, kr.add(q0, col)});
          if (row == 0) // L in base 2, as the scores
            x = kr.mul(x, kr.cst(kLog2E));
          memref::StoreOp::create(b, loc, x, stats,
                                  ValueRange{kr.index(row), col});
        }
        kr.barrier();
        // L or D of the thread's query columns 8 nt + 2 t4 + {0, 1}.
        auto statPair = [&](int64_t row, int64_t nt) {
          Value x = vector::LoadOp::create(
              b, loc, f32x2, stats,
              ValueRange{kr.index(row), kr.add(kr.mulIdx(kr.t4, 2), nt * 8)},
              /*nontemporal=*/false, llvm::MaybeAlign(8));
          return std::array<Value, 2>{vector::ExtractOp::create(b, loc, x, 0),
                                      vector::ExtractOp::create(b, loc, x, 1)};
        };
        // 16 queries at a time: P^T = exp(S^T scale - L) (0 where
        // masked), dV += P^T dO, dS^T = P^T (dP^T - D) with dP^T = V dO^T,
        // dK += dS^T Q.
        SmallVector<Value> acc(a.begin(), a.end());
        MutableArrayRef<Value> dk(acc.begin(), acc.begin() + numK);
        MutableArrayRef<Value> dv(acc.begin() + numK, acc.end());
        for (int64_t slab = 0; slab < kTile; slab += 16) {
          Elements p = kr.timesTileT(ka, dTile, slab, 16);
          Elements dp;
          if (wantK)
            dp = kr.timesTileT(va, eTile, slab, 16);
          // Query queryBase + c comes before key k if c < k - queryBase.
          Value queryBase = kr.add(q0, kr.add(kr.mulIdx(kr.t4, 2), slab));
          std::array<Value, 2> keyGap = kr.gaps(myKey, queryBase, cfg.causal);
          Elements ds(p.size());
          for (auto [nt, col] : llvm::enumerate(p)) {
            std::array<Value, 2> lse = statPair(0, slab / 8 + nt);
            std::array<Value, 2> delta;
            if (wantK)
              delta = statPair(1, slab / 8 + nt);
            for (int64_t h = 0; h < 2; ++h)
              for (int64_t j = 0; j < 2; ++j) {
                Value &val = col[h][j];
                val = kr.exp2(kr.fms(val, cfg.scale * kLog2E, lse[j]));
                if (cfg.causal)
                  val = kr.select(kr.constVs(int64_t(nt) * 8 + j,
                                             arith::CmpIPredicate::slt,
                                             keyGap[h]),
                                  kr.cst(0), val);
                if (wantK)
                  ds[nt][h][j] = kr.mul(val, kr.sub(dp[nt][h][j], delta[j]));
              }
          }
          if (wantV)
            kr.accumulateTimesTile(p, eTile, dv, slab);
          if (wantK)
            kr.accumulateTimesTile(ds, dTile, dk, slab);
        }
        kr.barrier();
        scf::YieldOp::create(b, loc, acc);
      });
  SmallVector<Value> results(loop.getResults());
  if (wantK)
    kr.storeRows(ArrayRef(results).take_front(numK), kr.uniform(cfg.scale),
                 out[0], n, k0);
  if (wantV)
    kr.storeRows(ArrayRef(results).drop_front(numK), {}, out.back(), n, k0);
}

DictionaryAttr configAttr(OpBuilder &b, StringRef kernel, double scale,
                          bool causal, StringRef format) {
  return b.getDictionaryAttr({
      b.getNamedAttr("kernel", b.getStringAttr(kernel)),
      b.getNamedAttr("scale", b.getF64FloatAttr(scale)),
      b.getNamedAttr("causal", b.getBoolAttr(causal)),
      b.getNamedAttr("format", b.getStringAttr(format)),
  });
}

} // namespace

bool mmaAttentionApplies(RankedTensorType q, RankedTensorType k,
                         RankedTensorType v) {
  if (q.getRank() != 3 || !q.hasStaticShape() || !k.hasStaticShape() ||
      !v.hasStaticShape())
    return false;
  int64_t d = q.getDimSize(2), e = v.getDimSize(2);
  // Head dimensions: whole k-steps of 16 for S, pairs of n-tiles for O;
  // at most 128 (registers: Q fragments, O accumulators and S).
  return q.getDimSize(1) % kRows == 0 && k.getDimSize(1) % kTile == 0 &&
         d % 16 == 0 && e % 16 == 0 && d <= 128 && e <= 128;
}

FlashForward buildMmaAttention(OpBuilder &b, Location loc, Value q, Value k,
                               Value v, double scale, bool causal, bool withLse,
                               StringRef format) {
  auto qt = cast<RankedTensorType>(q.getType());
  auto vt = cast<RankedTensorType>(v.getType());
  int64_t batch = qt.getDimSize(0), queries = qt.getDimSize(1);
  SmallVector<Value> outputs = {
      allocBuffer(b, loc, {batch, queries, vt.getDimSize(2)})};
  if (withLse)
    outputs.push_back(allocBuffer(b, loc, {batch, queries}));
  standIn(b, loc, queries / kRows, batch,
               {readBuffer(b, loc, q), readBuffer(b, loc, k),
                readBuffer(b, loc, v)},
               outputs, configAttr(b, "forward", scale, causal, format));
  return {tensorOf(b, loc, outputs[0]),
          withLse ? tensorOf(b, loc, outputs[1]) : Value()};
}

SmallVector<Value, 3> buildMmaAttentionGrad(OpBuilder &b, Location loc,
                                            Value g, Value q, Value k, Value v,
                                            Value o, Value lse, double scale,
                                            bool causal, StringRef format) {
  auto qt = cast<RankedTensorType>(q.getType());
  auto kt = cast<RankedTensorType>(k.getType());
  auto vt = cast<RankedTensorType>(v.getType());
  int64_t batch = qt.getDimSize(0), queries = qt.getDimSize(1),
          keys = kt.getDimSize(1);
  Value gb = readBuffer(b, loc, g), qb = readBuffer(b, loc, q),
        kb = readBuffer(b, loc, k), vb = readBuffer(b, loc, v);
  Value dq = allocBuffer(b, loc, qt.getShape());
  Value delta = allocBuffer(b, loc, {batch, queries});
  Value lseb = readBuffer(b, loc, lse);
  standIn(b, loc, queries / kRows, batch,
               {gb, qb, kb, vb, readBuffer(b, loc, o), lseb}, {dq, delta},
               configAttr(b, "grad_q", scale, causal, format));
  Value dk = allocBuffer(b, loc, kt.getShape());
  Value dv = allocBuffer(b, loc, vt.getShape());
  SmallVector<Value> kvInputs = {gb, qb, kb, vb, lseb, delta};
  if (kt.getDimSize(2) + vt.getDimSize(2) <= kMaxFusedKV) {
    standIn(b, loc, keys / kRows, batch, kvInputs, {dk, dv},
                 configAttr(b, "grad_kv", scale, causal, format));
  } else {
    standIn(b, loc, keys / kRows, batch, kvInputs, {dk},
                 configAttr(b, "grad_k", scale, causal, format));
    standIn(b, loc, keys / kRows, batch, kvInputs, {dv},
                 configAttr(b, "grad_v", scale, causal, format));
  }
  return {tensorOf(b, loc, dq), tensorOf(b, loc, dk), tensorOf(b, loc, dv)};
}

std::optional<MmaAttentionInputs> mmaAttentionHalfInputs(gpu::LaunchOp launch) {
  auto config = launch->getAttrOfType<DictionaryAttr>(kMmaAttentionAttr);
  if (!config)
    return std::nullopt;
  StringRef kernel = cast<StringAttr>(config.get("kernel")).getValue();
  SmallVector<Value> in, out;
  if (failed(readStandIn(launch, kernel == "forward" ? 3 : 6, in, out)))
    return std::nullopt;
  MmaAttentionInputs inputs;
  inputs.format = cast<StringAttr>(config.get("format")).getValue().str();
  if (kernel == "forward")
    inputs.forwardOutput = out[0];
  if (kernel == "grad_q")
    inputs.gradQOutput = in[4];
  // q, k, v; or dO, q, k, v.
  in.truncate(kernel == "forward" ? 3 : 4);
  inputs.buffers.assign(in.begin(), in.end());
  if (kernel == "grad_q")
    inputs.gradOutputs.push_back(out[0]);
  else if (kernel != "forward")
    inputs.gradOutputs.assign(out.begin(), out.end());
  return inputs;
}

LogicalResult expandMmaAttention(gpu::LaunchOp launch) {
  auto config = launch->getAttrOfType<DictionaryAttr>(kMmaAttentionAttr);
  if (!config)
    return success();
  launch->removeAttr(kMmaAttentionAttr);
  StringRef kernel = cast<StringAttr>(config.get("kernel")).getValue();
  Config cfg{cast<FloatAttr>(config.get("scale")).getValueAsDouble(),
             cast<BoolAttr>(config.get("causal")).getValue()};
  StringRef format = cast<StringAttr>(config.get("format")).getValue();
  SmallVector<Value> in, out;
  if (failed(readStandIn(launch, kernel == "forward" ? 3 : 6, in, out)))
    return failure();
  // Operands read in place from a strided view come through a cast to a
  // dynamic layout; the kernel indexes the static one.
  for (Value &v : llvm::concat<Value>(in, out))
    if (auto cast = v.getDefiningOp<memref::CastOp>())
      v = cast.getSource();

  Block &body = launch.getBody().front();
  while (!body.empty())
    body.back().erase();
  OpBuilder b(launch.getContext());
  b.setInsertionPointToStart(&body);
  Kernel kr(b, launch.getLoc(), format == "bf16", launch.getThreadIds().x);
  if (kernel == "forward")
    buildForwardKernel(kr, launch, in, out, cfg);
  else if (kernel == "grad_q")
    buildGradQKernel(kr, launch, in, out, cfg);
  else
    buildGradKVKernel(kr, launch, in, out, cfg, kernel != "grad_v",
                      kernel != "grad_k");
  gpu::TerminatorOp::create(b, launch.getLoc());
  if (format == "bf16")
    return retypeMmaToBF16(launch);
  return success();
}

} // namespace tessera
