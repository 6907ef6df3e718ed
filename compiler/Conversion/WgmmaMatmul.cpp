//===- WgmmaMatmul.cpp - Matmul kernels on sm_90 warpgroup MMA ------------===//
//
// The tensor-core matmul for sm_90a: `wgmma.mma_async` reads both operands
// from shared memory through 64-bit matrix descriptors and accumulates a
// 64 x 128 f32 tile per warpgroup (128 threads) in registers.
//
// A block of two warpgroups owns a 128 x N tile of C (N = 128 by default,
// or 256) and walks K 64 at a time through a ring of S shared-memory
// stages (4 by default, or 3; A 128 x 64 and B 64 x N each: 32 KiB with
// N = 128), filled by 16-byte cp.async copies S - 2 tiles ahead; for S = 4:
//
//   prologue: copy K tiles 0 and 1
//   for kt:   cp.async.wait_group 1          (tile kt has landed)
//             fence.proxy.async.shared::cta  (it is visible to wgmma)
//             bar.sync                       (for every thread's copies)
//             copy K tile kt + 2 into the stage of tile kt - 2
//             wgmma.fence; 4 x wgmma m64nNk16; commit
//             wgmma.wait_group 1             (tile kt - 1's products done)
//
// so the products of tile kt run while tiles kt + 1 and kt + 2 load, and
// a stage is refilled only after every warpgroup's products of it have
// completed (the wait of the previous iteration, then the barrier). With
// S = 3 the copies run one tile ahead (cp.async.wait_group 0), but the
// ring is 96 KiB, so two blocks fit on a multiprocessor; N = 256 halves
// the shared-memory traffic of A per product. Which is fastest is for a
// GPU to tell (bench/gpu.sh times each); `tessera compile --wgmma-tile`
// picks one.
//
// Shared-memory layout: the 128-byte swizzle of the PTX ISA's canonical
// layouts ("Shared Memory Matrix Layout"), 1024-byte aligned. A (M x K,
// K contiguous) and B given as N x K are K-major: row r's 16-byte chunk c
// lies at r * 128 + ((c ^ (r % 8)) * 16), 8 rows forming a 1024-byte atom
// (stride byte offset 1024); a k16 step moves the descriptor's start by 32
// bytes. B given as K x N is N-major (imm-trans-b = 1): atoms of 8 K rows
// x 64 N columns, K row kr's chunk c at kr * 128 + ((c ^ (kr % 8)) * 16)
// within its atom; the atoms of 8 K rows follow each other (stride byte
// offset 1024) and each further 64 columns start 8 KiB further (leading
// byte offset); a k16 step moves the start by 2048 bytes. The copies write
// exactly these addresses, so no data is moved twice.
//
// With TMA (`buildTmaKernel`), the same ring and layout are filled by
// cp.async.bulk.tensor boxes that one producer thread issues on per-stage
// mbarriers, while two consumer warpgroups (384 threads in all) only wait
// and multiply: a warp-specialized kernel.
//
// Both kernels can split K over several blocks per tile of C (split-K,
// for a C of few tiles and a long K: `finishTile`), and number the tiles
// in groups of rows walked column by column (`tileOrigin`).
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/MmaUtils.h"
#include "compiler/Conversion/ConsumerEpilogue.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

using namespace mlir;

namespace tessera {
namespace {

/// Block rows, K tile, threads (two warpgroups).
constexpr int64_t kBM = 128, kBK = 64, kThreads = 256;
/// Bytes of A's tile in one stage.
constexpr int64_t kTileBytesA = kBM * kBK * 2;

/// The block's columns and the ring's stages, and the sizes they imply;
/// the rows of tiles of C that the blocks walk together (see tileOrigin).
struct Tile {
  int64_t bn, stages, groupRows = 1;
  int64_t tileBytesB() const { return bn * kBK * 2; }
  int64_t stageBytes() const { return kTileBytesA + tileBytesB(); }
  /// The ring plus the slack that aligns it to 1024 bytes (the swizzle's
  /// period).
  int64_t sharedBytes() const { return stages * stageBytes() + 1024; }
  /// Accumulators per thread: a 64 x bn f32 tile over 128 threads.
  int64_t accumulators() const { return 64 * bn / 128; }
};

struct Builder {
  OpBuilder &b;
  Location loc;

  Value index(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value i64(int64_t v) {
    return arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(v));
  }
  Value i32(int64_t v) {
    return arith::ConstantOp::create(b, loc, b.getI32IntegerAttr(v));
  }
  /// An index as i32 (the type of TMA coordinates and mbarrier parities).
  Value toI32(Value x) {
    return arith::IndexCastUIOp::create(b, loc, b.getI32Type(), x);
  }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, loc, x, y); }
  Value add(Value x, int64_t c) { return c ? add(x, index(c)) : x; }
  Value mul(Value x, int64_t c) {
    return arith::MulIOp::create(b, loc, x, index(c));
  }
  Value div(Value x, int64_t c) {
    return arith::DivUIOp::create(b, loc, x, index(c));
  }
  Value rem(Value x, int64_t c) {
    return arith::RemUIOp::create(b, loc, x, index(c));
  }
  Value xorI(Value x, Value y) { return arith::XOrIOp::create(b, loc, x, y); }
  Value minI(Value x, Value y) { return arith::MinUIOp::create(b, loc, x, y); }
  Value minI(Value x, int64_t c) { return minI(x, index(c)); }
  Value less(Value x, int64_t c) {
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, x,
                                 index(c));
  }
  Value equal(Value x, int64_t c) {
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, x,
                                 index(c));
  }
  /// x && y, where a null condition is true.
  Value both(Value x, Value y) {
    if (!x || !y)
      return x ? x : y;
    return arith::AndIOp::create(b, loc, x, y);
  }
};

/// The parts of a marked contraction the kernel needs.
struct Operands {
  Value a, bm, c;
  bool aTransposed; // a is K x M (M-major); otherwise M x K (K-major)
  bool bTransposed; // b is N x K (K-major); otherwise K x N (N-major)
  int64_t m, n, k;
  /// Tiles of C along M and, with t's columns, along N; tiles of K.
  int64_t tilesM() const { return llvm::divideCeil(m, kBM); }
  int64_t tilesN(const Tile &t) const { return llvm::divideCeil(n, t.bn); }
  int64_t kTiles() const { return llvm::divideCeil(k, kBK); }
};

/// An index of an operand's dimension of `extent` elements, read `width` at
/// a time (1 along rows, 8 along the contiguous dimension): where the tiles
/// cover the dimension exactly (`ragged` false), the index itself;
/// otherwise the index clamped to the last piece, so that the address
/// stays inside the operand, with `valid` and-ed with whether the piece
/// starts inside.
Value bounded(Builder &k, Value index, int64_t extent, int64_t width,
              bool ragged, Value &valid) {
  if (!ragged)
    return index;
  valid = k.both(valid, k.less(index, extent));
  return k.minI(index, llvm::alignTo(extent, width) - width);
}

/// A shared-memory matrix descriptor (PTX ISA, "Matrix Descriptor Format"):
/// start address >> 4 in bits 0-13, leading and stride byte offsets >> 4 in
/// bits 16-29 and 32-45, the swizzle mode in bits 62-63 (1: 128 bytes).
Value descriptor(Builder &k, Value address, int64_t leading, int64_t stride) {
  OpBuilder &b = k.b;
  Value addr = arith::IndexCastUIOp::create(b, k.loc, b.getI64Type(), address);
  Value start = arith::ShRUIOp::create(
      b, k.loc, arith::AndIOp::create(b, k.loc, addr, k.i64(0x3FFFF)),
      k.i64(4));
  int64_t fixed = ((leading >> 4) << 16) | ((stride >> 4) << 32) |
                  (int64_t(1) << 62);
  return arith::OrIOp::create(b, k.loc, start, k.i64(fixed));
}

/// The copies of K tile `kt` (clamped to the last; nothing is read when
/// `live` is false) into stage `stage` of `ring` (f16 elements), one
/// cp.async group. Where a tile reaches past M, N or K, the 16-byte pieces
/// outside are zero-filled instead (a cp.async source size of 0): zeros
/// along K add nothing to the products, and rows or columns past M or N
/// are not stored.
void copyTile(Builder &k, const Operands &o, const Tile &t, Value ring,
              Value tid, Value m0, Value n0, Value kt, Value live,
              Value stage) {
  OpBuilder &b = k.b;
  Type token = nvgpu::DeviceAsyncTokenType::get(b.getContext());
  Value k0 = k.mul(kt, kBK);
  Value stageBase = k.mul(stage, t.stageBytes() / 2);
  SmallVector<Value> tokens;
  bool raggedM = o.m % kBM, raggedN = o.n % t.bn, raggedK = o.k % kBK;
  // The 16-byte piece at (row, col) of `src` to `dst`: `src` has `rows`
  // rows of `cols` elements, each dimension ragged or not. A row of `cols`
  // elements that 8 does not divide ends in a piece of fewer: the copy
  // reads those and zero-fills the rest.
  auto copy = [&](Value src, Value row, int64_t rows, bool raggedRows,
                  Value col, int64_t cols, bool raggedCols, Value dst) {
    Value valid = live;
    row = bounded(k, row, rows, 1, raggedRows, valid);
    Value count = k.index(8);
    if (cols % 8)
      count = k.minI(arith::SubIOp::create(b, k.loc, k.index(cols), col),
                     count);
    col = bounded(k, col, cols, 8, raggedCols, valid);
    Value srcElements =
        arith::SelectOp::create(b, k.loc, valid, count, k.index(0));
    tokens.push_back(nvgpu::DeviceAsyncCopyOp::create(
        b, k.loc, token, ring, ValueRange{dst}, src, ValueRange{row, col},
        b.getIndexAttr(8), srcElements, b.getUnitAttr()));
  };
  // K-major rows of 8 chunks of 16 bytes: the chunk of element offset e
  // (in chunks) of a rows x 64 tile.
  auto kMajor = [&](Value r, Value ch) {
    return k.add(k.mul(r, kBK), k.mul(k.xorI(ch, k.rem(r, 8)), 8));
  };
  // MN-major (a K row holds contiguous elements of M or N): chunk nc of K
  // row kr, in atoms of 64 columns 8 KiB (4096 halves) apart whose K rows
  // are 128 bytes (64 halves) apart.
  auto mnMajor = [&](Value kr, Value nc) {
    Value atom = k.div(nc, 8), cc = k.rem(nc, 8);
    return k.add(k.add(k.mul(atom, 4096), k.mul(kr, 64)),
                 k.mul(k.xorI(cc, k.rem(kr, 8)), 8));
  };
  // A: 1024 chunks, 4 per thread.
  for (int64_t it = 0; it < kBM * kBK / 8 / kThreads; ++it) {
    Value e = k.add(tid, it * kThreads);
    if (o.aTransposed) { // K x M: M-major, K row kr, chunk nc of 16
      Value kr = k.div(e, kBM / 8), nc = k.rem(e, kBM / 8);
      copy(o.a, k.add(k0, kr), o.k, raggedK, k.add(m0, k.mul(nc, 8)), o.m,
           raggedM, k.add(stageBase, mnMajor(kr, nc)));
      continue;
    }
    Value r = k.div(e, 8), ch = k.rem(e, 8);
    copy(o.a, k.add(m0, r), o.m, raggedM, k.add(k0, k.mul(ch, 8)), o.k,
         raggedK, k.add(stageBase, kMajor(r, ch)));
  }
  // B: bn * 8 chunks, 4 or 8 per thread.
  Value bBase = k.add(stageBase, kTileBytesA / 2);
  int64_t rowChunks = t.bn / 8;
  for (int64_t it = 0; it < t.bn * kBK / 8 / kThreads; ++it) {
    Value e = k.add(tid, it * kThreads);
    if (o.bTransposed) { // N x K: K-major, as A
      Value r = k.div(e, 8), ch = k.rem(e, 8);
      copy(o.bm, k.add(n0, r), o.n, raggedN, k.add(k0, k.mul(ch, 8)), o.k,
           raggedK, k.add(bBase, kMajor(r, ch)));
      continue;
    }
    // N-major: K row kr, chunk nc of bn / 8 across the columns.
    Value kr = k.div(e, rowChunks), nc = k.rem(e, rowChunks);
    copy(o.bm, k.add(k0, kr), o.k, raggedK, k.add(n0, k.mul(nc, 8)), o.n,
         raggedN, k.add(bBase, mnMajor(kr, nc)));
  }
  nvgpu::DeviceAsyncCreateGroupOp::create(b, k.loc, token, tokens);
}

/// The products of one K tile in shared memory at `stage` for warpgroup
/// `warpgroup` (rows 64 x warpgroup of the tile): wgmma.fence, then four
/// m64nNk16 on `acc`, committed as one group.
Value products(Builder &k, const Operands &o, const Tile &t, bool bf16,
               Type accType, Value acc, Value stage, Value warpgroup) {
  OpBuilder &b = k.b;
  Location loc = k.loc;
  MLIRContext *ctx = b.getContext();
  // Each warpgroup's 64 rows of A: 64 x 64 K-major, or one atom column
  // (64 K rows x 64 M) M-major; 8 KiB either way.
  Value aBase = k.add(stage, k.mul(warpgroup, 64 * kBK * 2));
  Value bBase = k.add(stage, kTileBytesA);
  NVVM::WgmmaFenceAlignedOp::create(b, loc);
  for (int64_t step = 0; step < kBK / 16; ++step) {
    Value descA = o.aTransposed
                      ? descriptor(k, k.add(aBase, step * 2048), 8192, 1024)
                      : descriptor(k, k.add(aBase, step * 32), 16, 1024);
    Value descB = o.bTransposed
                      ? descriptor(k, k.add(bBase, step * 32), 16, 1024)
                      : descriptor(k, k.add(bBase, step * 2048), 8192, 1024);
    auto type = bf16 ? NVVM::WGMMATypes::bf16 : NVVM::WGMMATypes::f16;
    acc = NVVM::WgmmaMmaAsyncOp::create(
        b, loc, accType, acc, descA, descB,
        NVVM::MMAShapeAttr::get(ctx, 64, t.bn, 16), type, type,
        NVVM::WGMMATypes::f32, NVVM::WGMMAScaleOut::one,
        NVVM::WGMMAScaleIn::one, NVVM::WGMMAScaleIn::one,
        o.aTransposed ? NVVM::MMALayout::col : NVVM::MMALayout::row,
        o.bTransposed ? NVVM::MMALayout::col : NVVM::MMALayout::row,
        /*satfinite=*/nullptr);
  }
  NVVM::WgmmaGroupSyncAlignedOp::create(b, loc);
  return acc;
}

/// The row and column of C of the first accumulator of thread `tid` of
/// warpgroup `warpgroup` (rows 64 x warpgroup of the tile at m0, n0).
/// Thread (warp w of the warpgroup, lane l) holds, per 8 columns nt, rows
/// 16 w + l / 4 (+ 8) and columns 8 nt + 2 (l % 4) (+ 1): the m16n8
/// accumulator layout, repeated; element 4 nt + 2 h + j of the accumulator
/// struct is at row + 8 h, column + 8 nt + j.
std::pair<Value, Value> fragmentOrigin(Builder &k, Value tid, Value warpgroup,
                                       Value m0, Value n0) {
  Value lane = k.rem(tid, 32), warp = k.rem(k.div(tid, 32), 4);
  Value row = k.add(k.add(m0, k.mul(warpgroup, 64)),
                    k.add(k.mul(warp, 16), k.div(lane, 4)));
  return {row, k.add(n0, k.mul(k.rem(lane, 4), 2))};
}

/// Stores the accumulators `result` of warpgroup `warpgroup` (rows 64 x
/// warpgroup of the block's tile) into C, or runs `epilogue` on them.
/// Past M or N, nothing is stored; with N odd, the two columns are stored
/// apart (a row's pairs are not 8-byte aligned then).
void storeTile(Builder &k, const Operands &o, const Tile &t, Value result,
               Value tid, Value warpgroup, Value m0, Value n0,
               ConsumerEpilogue *epilogue) {
  OpBuilder &b = k.b;
  Location loc = k.loc;
  Type f32 = b.getF32Type();
  auto [row, col] = fragmentOrigin(k, tid, warpgroup, m0, n0);
  auto pair = VectorType::get({2}, f32);
  bool raggedM = o.m % kBM, raggedN = o.n % t.bn;
  int64_t width = o.n % 2 ? 1 : 2;
  for (int64_t nt = 0; nt < t.bn / 8; ++nt)
    for (int64_t h = 0; h < 2; ++h) {
      Value r = k.add(row, 8 * h);
      Value inside = raggedM ? k.less(r, o.m) : Value();
      for (int64_t j = 0; j < 2; j += width) {
        SmallVector<Value> values;
        for (int64_t e = j; e < j + width; ++e)
          values.push_back(LLVM::ExtractValueOp::create(b, loc, result,
                                                        4 * nt + 2 * h + e));
        Value c = k.add(col, 8 * nt + j);
        Value store = k.both(inside, raggedN ? k.less(c, o.n) : Value());
        OpBuilder::InsertionGuard guard(b);
        if (store) {
          auto ifOp = scf::IfOp::create(b, loc, store, /*withElse=*/false);
          b.setInsertionPointToStart(&ifOp.getThenRegion().front());
        }
        if (epilogue)
          epilogue->emit(b, loc, r, c, values);
        else if (width == 1)
          memref::StoreOp::create(b, loc, values[0], o.c, ValueRange{r, c});
        else
          vector::StoreOp::create(
              b, loc, vector::FromElementsOp::create(b, loc, pair, values),
              o.c, ValueRange{r, c}, /*nontemporal=*/false,
              llvm::MaybeAlign(8));
      }
    }
}

//===----------------------------------------------------------------------===//
// Split-K
//===----------------------------------------------------------------------===//

/// A split of K over `splits` blocks per tile of C: each block runs
/// kTiles / splits of the K tiles, and finishTile adds up their partial
/// tiles.
struct SplitK {
  int64_t splits = 1;
  /// splits x (M rounded up to tiles) x (N rounded up to tiles) f32: each
  /// split's partial tile.
  Value partials;
  /// i32 per tile and warpgroup, zero before the kernel: the splits that
  /// have written their partial.
  Value counters;
};

/// K tiles a split runs at least: fewer would spend more of the kernel
/// filling the ring and writing the partial than multiplying.
constexpr int64_t kMinSplitTiles = 8;
/// What writing one partial tile and reading it back costs a block, in K
/// tiles of products: a guess between the partials staying in L2 (about 1)
/// and going to device memory on a loaded GPU (about 10); not measured.
constexpr int64_t kPartialCost = 4;

/// The splits of K for `tiles` tiles of C over `kTiles` K tiles, planned
/// for `multiprocessors` that run one block each (the kernels' registers
/// allow no more): the S of 1, 2, 4, 8 and 16 that divide the K tiles into
/// runs of at least kMinSplitTiles minimizing the busiest multiprocessor's
/// time in K tiles, ceil(tiles S / multiprocessors) kTiles / S, plus
/// kPartialCost per partial the last split sums. Weight gradients are the
/// case: GPT-2's 768 x 3072 over K = 8192 tokens has 144 tiles, two waves
/// on 132 multiprocessors of which the second keeps 12 busy; in 4 splits
/// it is 5 waves of a quarter of the length.
int64_t plannedSplits(int64_t tiles, int64_t kTiles, int64_t multiprocessors) {
  auto cost = [&](int64_t s) {
    return llvm::divideCeil(tiles * s, multiprocessors) * (kTiles / s) +
           (s > 1 ? kPartialCost * s : 0);
  };
  int64_t best = 1;
  for (int64_t s = 2; s <= 16; s *= 2)
    if (kTiles % s == 0 && kTiles / s >= kMinSplitTiles && cost(s) < cost(best))
      best = s;
  return best;
}

/// The end of a tile for one warpgroup: its accumulators `result` go to C
/// (storeTile). With split-K, they go to the split's partial tile instead,
/// and the warpgroup counts itself on the tile's counter; the last of the
/// tile's splits to arrive sums the partials in the order of the splits
/// (so the sum does not depend on which block came last) and stores that.
/// `tid` is the thread's index in the block or in its warpgroup, `tile`
/// the tile's index among C's.
void finishTile(Builder &k, const Operands &o, const Tile &t,
                const SplitK &sk, Value result, Value tid, Value warpgroup,
                Value m0, Value n0, Value split, Value tile,
                ConsumerEpilogue *epilogue) {
  if (sk.splits == 1)
    return storeTile(k, o, t, result, tid, warpgroup, m0, n0, epilogue);
  OpBuilder &b = k.b;
  Location loc = k.loc;
  auto pair = VectorType::get({2}, b.getF32Type());
  // The partials are whole tiles: no element of a thread's is outside.
  Value row, col;
  std::tie(row, col) = fragmentOrigin(k, tid, warpgroup, m0, n0);
  auto forEachPair = [&](function_ref<void(int64_t, Value, Value)> fn) {
    for (int64_t nt = 0; nt < t.bn / 8; ++nt)
      for (int64_t h = 0; h < 2; ++h)
        fn(4 * nt + 2 * h, k.add(row, 8 * h), k.add(col, 8 * nt));
  };
  forEachPair([&](int64_t e, Value r, Value c) {
    Value values = vector::FromElementsOp::create(
        b, loc, pair,
        ValueRange{LLVM::ExtractValueOp::create(b, loc, result, e),
                   LLVM::ExtractValueOp::create(b, loc, result, e + 1)});
    vector::StoreOp::create(b, loc, values, sk.partials,
                            ValueRange{split, r, c}, /*nontemporal=*/false,
                            llvm::MaybeAlign(8));
  });
  // The partial is visible to every block before the arrival is counted
  // (the threads' fences, then the warpgroup's barrier); the counting
  // thread's old count tells whether it was the last, and a barrier that
  // or-reduces that tells the whole warpgroup. Named barriers 1 and 2 are
  // the warpgroups' (0 is the block's).
  NVVM::MembarOp::create(b, loc, NVVM::MemScopeKind::GPU);
  Value barrier = k.toI32(k.add(warpgroup, 1));
  Value threads = k.i32(128);
  NVVM::BarrierOp::create(b, loc, TypeRange{}, barrier, threads,
                          NVVM::BarrierReductionAttr(), Value());
  Value counter = k.add(k.mul(tile, 2), warpgroup);
  Type i1 = b.getI1Type();
  auto counting =
      scf::IfOp::create(b, loc, i1, k.equal(k.rem(tid, 128), 0), true);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&counting.getThenRegion().front());
    Value before = memref::AtomicRMWOp::create(
        b, loc, arith::AtomicRMWKind::addi, k.i32(1), sk.counters,
        ValueRange{counter});
    scf::YieldOp::create(
        b, loc,
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, before,
                              k.i32(sk.splits - 1))
            .getResult());
    b.setInsertionPointToStart(&counting.getElseRegion().front());
    scf::YieldOp::create(b, loc, arith::ConstantOp::create(
                                     b, loc, b.getBoolAttr(false))
                                     .getResult());
  }
  // bar.red.or.pred with a barrier id and thread count: nvvm.barrier
  // reduces over the whole block only (barrier 0), and the other
  // warpgroups do not take part.
  Value last =
      LLVM::CallIntrinsicOp::create(
          b, loc, i1,
          b.getStringAttr("llvm.nvvm.barrier.cta.red.or.aligned.count"),
          ValueRange{barrier, threads, counting.getResult(0)})
          .getResult(0);
  auto ifLast = scf::IfOp::create(b, loc, last, false);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(&ifLast.getThenRegion().front());
  // The other splits' partials, seen after their arrivals.
  NVVM::MembarOp::create(b, loc, NVVM::MemScopeKind::GPU);
  Value zero = LLVM::ZeroOp::create(b, loc, result.getType());
  auto sum = scf::ForOp::create(b, loc, k.index(0), k.index(sk.splits),
                                k.index(1), ValueRange{zero});
  {
    OpBuilder::InsertionGuard loopGuard(b);
    b.setInsertionPointToStart(sum.getBody());
    Value acc = sum.getRegionIterArgs()[0];
    forEachPair([&](int64_t e, Value r, Value c) {
      Value loaded = vector::LoadOp::create(
          b, loc, pair, sk.partials,
          ValueRange{sum.getInductionVar(), r, c});
      for (int64_t j = 0; j < 2; ++j) {
        Value x = LLVM::ExtractValueOp::create(b, loc, acc, e + j);
        Value y = vector::ExtractOp::create(b, loc, loaded, j);
        acc = LLVM::InsertValueOp::create(
            b, loc, acc, arith::AddFOp::create(b, loc, x, y), e + j);
      }
    });
    scf::YieldOp::create(b, loc, acc);
  }
  storeTile(k, o, t, sum.getResult(0), tid, warpgroup, m0, n0, epilogue);
}

/// Whether `x` and `y` are the same view: the same value, or the same
/// result of two equal view ops of the same source (two collapse_shapes of
/// one buffer).
bool sameView(Value x, Value y) {
  if (x == y)
    return true;
  auto a = dyn_cast_or_null<ViewLikeOpInterface>(x.getDefiningOp());
  auto b = dyn_cast_or_null<ViewLikeOpInterface>(y.getDefiningOp());
  return a && b &&
         cast<OpResult>(x).getResultNumber() ==
             cast<OpResult>(y).getResultNumber() &&
         OperationEquivalence::isEquivalentTo(
             a, b, OperationEquivalence::IgnoreLocations);
}

/// Whether the ops strictly between `from` and `to` may not write `root`:
/// `untouchedBetween`, except that a kernel in `kernels` only reads what
/// its copies read (their effects are not known to MLIR).
bool unwrittenBetween(Operation *from, Operation *to, Value root,
                      const PaddedCopies &copies) {
  Operation *start = from;
  for (Operation *op = from->getNextNode(); op != to; op = op->getNextNode()) {
    if (!copies.kernels.contains(op))
      continue;
    if (!untouchedBetween(start, op, {root}, {}))
      return false;
    WalkResult writes = op->walk([&](Operation *inner) {
      auto copy = dyn_cast<nvgpu::DeviceAsyncCopyOp>(inner);
      for (OpOperand &use : inner->getOpOperands())
        if (isa<BaseMemRefType>(use.get().getType()) &&
            rootBuffer(use.get()) == root &&
            !(copy && use.get() == copy.getSrc()))
          return WalkResult::interrupt();
      return WalkResult::advance();
    });
    if (writes.wasInterrupted())
      return false;
    start = op;
  }
  return untouchedBetween(start, to, {root}, {});
}

/// Whether the kernel to be built before `point` can read the copy that
/// `fill` makes of `operand` (a same view): the copy is made before
/// `point` (moved there if it is made further down) and nothing between
/// may write the operand.
bool reuseCopy(Operation *fill, Value operand, Operation *point,
               const PaddedCopies &copies) {
  if (fill->getBlock() != point->getBlock())
    return false;
  Value root = rootBuffer(operand);
  if (fill->isBeforeInBlock(point))
    return unwrittenBetween(fill, point, root, copies);
  if (!unwrittenBetween(point, fill, root, copies))
    return false;
  // Made for a kernel further down: made here instead.
  Value view = fill->getOperand(1);
  rootBuffer(view).getDefiningOp()->moveBefore(point);
  view.getDefiningOp()->moveBefore(point);
  fill->setOperand(0, operand);
  fill->moveBefore(point);
  return true;
}

/// The origin (m0, n0) of the tile of C numbered `tile` in the order the
/// blocks run: groups of t.groupRows rows of tiles one after the other,
/// each walked column by column (the rows of a column, then the next
/// column). The blocks running at once then share the B tiles of a few
/// columns and the A tiles of a few rows, which L2 holds, where rows of
/// tiles walked one by one would read all of B again for each row: for
/// GPT-2's tied head (8192 x 50304 over K = 768, 64 rows of 393 tiles) 64
/// times its 77 MB, more than L2 keeps.
std::pair<Value, Value> tileOrigin(Builder &k, const Operands &o,
                                   const Tile &t, Value tile) {
  int64_t tilesM = o.tilesM(), tilesN = o.tilesN(t);
  int64_t g = std::min(t.groupRows, tilesM);
  if (g <= 1)
    return {k.mul(k.div(tile, tilesN), kBM), k.mul(k.rem(tile, tilesN), t.bn)};
  // Group `group` starts at row g * group and has g rows, or what is left.
  Value group = k.div(tile, g * tilesN), inGroup = k.rem(tile, g * tilesN);
  Value first = k.mul(group, g);
  Value rows = tilesM % g
                   ? k.minI(arith::SubIOp::create(k.b, k.loc,
                                                  k.index(tilesM), first),
                            g)
                   : k.index(g);
  Value row = k.add(first, arith::RemUIOp::create(k.b, k.loc, inGroup, rows));
  Value col = arith::DivUIOp::create(k.b, k.loc, inGroup, rows);
  return {k.mul(row, kBM), k.mul(col, t.bn)};
}

/// A kernel's launch, entered: one block per 128 x bn tile of C (the tile
/// at m0, n0) and split of K, or a grid of `blocks` blocks that walk the
/// tiles, and its dynamic shared memory, whose ring starts at the first
/// 1024-byte boundary (the 128-byte swizzle's period).
struct Frame {
  gpu::LaunchOp launch;
  /// With a block per tile: the tile's origin, its index among C's tiles
  /// and the block's split of K.
  Value tid, m0, n0, tile, split;
  /// The dynamic shared memory (i8), the padding to the boundary, and the
  /// ring's shared address.
  Value bytes, pad, ring;
};

Frame startKernel(Builder &k, const Operands &o, const Tile &t,
                  int64_t threads, int64_t sharedBytes, int64_t splits,
                  Value blocks = {}) {
  OpBuilder &b = k.b;
  Location loc = k.loc;
  Value one = k.index(1);
  Frame f;
  int64_t tilesN = o.tilesN(t);
  f.launch = gpu::LaunchOp::create(
      b, loc, blocks ? blocks : k.index(tilesN),
      blocks ? one : k.index(o.tilesM()),
      blocks ? one : k.index(splits), k.index(threads), one, one,
      /*dynamicSharedMemorySize=*/
      arith::ConstantOp::create(b, loc, b.getI32IntegerAttr(sharedBytes)));
  b.setInsertionPointToStart(&f.launch.getBody().front());
  f.tid = f.launch.getThreadIds().x;
  if (!blocks) {
    gpu::KernelDim3 ids = f.launch.getBlockIds();
    // Blocks start in the order of their ids (x fastest): the order of
    // tileOrigin, which row by row is the ids' own.
    f.tile = k.add(k.mul(ids.y, tilesN), ids.x);
    if (std::min(t.groupRows, o.tilesM()) > 1) {
      std::tie(f.m0, f.n0) = tileOrigin(k, o, t, f.tile);
    } else {
      f.n0 = k.mul(ids.x, t.bn);
      f.m0 = k.mul(ids.y, kBM);
    }
    f.split = ids.z;
  }
  auto shared = gpu::AddressSpaceAttr::get(b.getContext(),
                                           gpu::AddressSpace::Workgroup);
  f.bytes = gpu::DynamicSharedMemoryOp::create(
      b, loc,
      MemRefType::get({ShapedType::kDynamic}, b.getI8Type(),
                      MemRefLayoutAttrInterface(), shared));
  Value base = memref::ExtractAlignedPointerAsIndexOp::create(b, loc, f.bytes);
  f.pad = k.rem(arith::SubIOp::create(b, loc, k.index(1024),
                                      k.rem(base, 1024)),
                1024);
  f.ring = k.add(base, f.pad);
  return f;
}

/// The kernel that loads with cp.async (the file comment's schedule).
gpu::LaunchOp buildCpAsyncKernel(Builder &k, const Operands &o, const Tile &t,
                                 bool bf16, const SplitK &sk,
                                 ConsumerEpilogue *epilogue) {
  OpBuilder &b = k.b;
  Location loc = k.loc;
  MLIRContext *ctx = b.getContext();
  Value one = k.index(1);
  Frame f = startKernel(k, o, t, kThreads, t.sharedBytes(), sk.splits);
  gpu::LaunchOp launch = f.launch;
  Value tid = f.tid, n0 = f.n0, m0 = f.m0, ringAddress = f.ring;
  auto shared = gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
  Value ring = memref::ViewOp::create(
      b, loc,
      MemRefType::get({t.stages * t.stageBytes() / 2}, b.getF16Type(),
                      MemRefLayoutAttrInterface(), shared),
      f.bytes, f.pad, ValueRange{});

  // The block's split runs K tiles [first, first + tiles).
  int64_t tiles = o.kTiles() / sk.splits;
  Value first = sk.splits > 1 ? k.mul(f.split, tiles) : k.index(0);
  Value lastTile = k.index(tiles - 1);
  // The copies of the split's K tile kt.
  auto issue = [&](Value kt) {
    Value live = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ule, kt,
                                       lastTile);
    copyTile(k, o, t, ring, tid, m0, n0, k.add(first, k.minI(kt, lastTile)),
             live, k.rem(kt, t.stages));
  };
  // Prologue: tiles 0 to S - 3.
  for (int64_t kt = 0; kt < t.stages - 2; ++kt)
    issue(k.index(kt));

  Type f32 = b.getF32Type();
  auto accType = LLVM::LLVMStructType::getLiteral(
      ctx, SmallVector<Type>(t.accumulators(), f32));
  Value zero = LLVM::ZeroOp::create(b, loc, accType);
  Value warpgroup = k.div(tid, 128);
  auto loop = scf::ForOp::create(b, loc, k.index(0), k.index(tiles), one,
                                 ValueRange{zero});
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    Value kt = loop.getInductionVar();
    Value acc = loop.getRegionIterArgs()[0];
    // Tile kt has landed (S - 3 younger groups may still be in flight).
    NVVM::CpAsyncWaitGroupOp::create(b, loc, t.stages - 3);
    NVVM::FenceProxyOp::create(
        b, loc, NVVM::ProxyKind::async_shared,
        NVVM::SharedSpaceAttr::get(ctx, NVVM::SharedSpace::shared_cta));
    gpu::BarrierOp::create(b, loc);
    issue(k.add(kt, t.stages - 2));

    Value stage =
        k.add(ringAddress, k.mul(k.rem(kt, t.stages), t.stageBytes()));
    acc = products(k, o, t, bf16, accType, acc, stage, warpgroup);
    NVVM::WgmmaWaitGroupSyncOp::create(b, loc, 1);
    scf::YieldOp::create(b, loc, acc);
  }
  NVVM::WgmmaWaitGroupSyncOp::create(b, loc, 0);
  NVVM::CpAsyncWaitGroupOp::create(b, loc, 0);

  finishTile(k, o, t, sk, loop.getResult(0), tid, warpgroup, m0, n0, f.split,
             f.tile, epilogue);
  gpu::TerminatorOp::create(b, loc);
  return launch;
}

//===----------------------------------------------------------------------===//
// The TMA kernel
//===----------------------------------------------------------------------===//

/// Threads of the TMA kernel: a producer warpgroup and two consumers.
constexpr int64_t kTmaThreads = 384;
/// Registers per thread after setmaxnreg: the producer needs few, the
/// consumers hold the accumulators (2 x 128 x 232 + 128 x 40 <= 64 Ki).
constexpr int64_t kProducerRegisters = 40, kConsumerRegisters = 232;
/// Consumer warps: each arrives once on a stage's `empty` barrier.
constexpr int64_t kConsumerWarps = 8;

/// What a TMA descriptor needs of a 2-D operand: its rows and columns (the
/// logical ones: a padded copy's extra columns are out of bounds, so TMA
/// reads zeros there), its row stride and offset in elements.
struct TmaOperand {
  Value buffer;
  int64_t rows, cols, stride, offset;
};

/// `v` as a TMA operand, if TMA can read it: unit column stride, a static
/// row stride and offset, both multiples of 16 bytes (the descriptor's
/// address and strides must be). Device allocations are 256-byte aligned.
std::optional<TmaOperand> tmaOperand(Value v, int64_t cols) {
  auto type = cast<MemRefType>(v.getType());
  SmallVector<int64_t> strides;
  int64_t offset;
  if (type.getRank() != 2 || failed(type.getStridesAndOffset(strides, offset)))
    return std::nullopt;
  if (strides[1] != 1 || ShapedType::isDynamic(strides[0]) ||
      ShapedType::isDynamic(offset) || strides[0] % 8 || offset % 8)
    return std::nullopt;
  return TmaOperand{v, type.getDimSize(0), cols, strides[0], offset};
}

/// The runtime functions the host calls for the TMA kernels
/// (runtime/cuda/MgpuABI.h): a descriptor's device address (made and
/// cached), and the device's multiprocessor count.
constexpr llvm::StringLiteral kTensorMapFn = "tesseraTensorMap2D";
constexpr llvm::StringLiteral kMultiprocessorsFn =
    "tesseraMultiprocessorCount";

/// A call of the runtime function `name` on i64 `args`, returning an i64;
/// declared in `anchor`'s module on first use.
func::CallOp runtimeCall(Builder &k, Operation *anchor, StringRef name,
                         ValueRange args) {
  OpBuilder &b = k.b;
  auto module = anchor->getParentOfType<ModuleOp>();
  Type i64 = b.getI64Type();
  auto fn = module.lookupSymbol<func::FuncOp>(name);
  if (!fn) {
    OpBuilder top = OpBuilder::atBlockBegin(module.getBody());
    fn = func::FuncOp::create(
        top, k.loc, name,
        top.getFunctionType(SmallVector<Type>(args.size(), i64), {i64}));
    fn.setPrivate();
  }
  return func::CallOp::create(b, k.loc, fn, args);
}

/// Host code before the launch: the device address of the descriptor of
/// `o`, read in boxes of `boxRows` x `boxCols`.
Value tensorMap(Builder &k, const TmaOperand &o, int64_t boxRows,
                int64_t boxCols, bool bf16, Operation *anchor) {
  OpBuilder &b = k.b;
  Value base =
      memref::ExtractAlignedPointerAsIndexOp::create(b, k.loc, o.buffer);
  Value address = arith::IndexCastUIOp::create(b, k.loc, b.getI64Type(),
                                               k.add(base, o.offset * 2));
  return runtimeCall(k, anchor, kTensorMapFn,
                     {address, k.i64(o.rows), k.i64(o.cols),
                      k.i64(o.stride * 2), k.i64(boxRows), k.i64(boxCols),
                      k.i64(bf16)})
      .getResult(0);
}

/// The warp-specialized kernel (sm_90a, TMA): warpgroup 0's first thread
/// is the producer. For each K tile it waits until the consumers released
/// the tile's stage (`empty`), announces the stage's bytes on its `full`
/// barrier and issues the TMA copies, which complete on that barrier; the
/// copies write the same 128-byte-swizzled layout as the cp.async kernel
/// (one box per 128-byte row set: A 128 x 64 or two 64 x 64 boxes for
/// M-major, B N x 64 or N / 64 boxes of 64 x 64) and read zeros past the
/// operand's rows and columns, so partial tiles need nothing more.
/// Warpgroups 1 and 2 compute 64 rows each: wait on `full`, wgmma, and
/// once the previous tile's products are done, release its stage.
/// setmaxnreg moves registers from the producer to the consumers.
gpu::LaunchOp buildTmaKernel(Builder &k, const Operands &o, const Tile &t,
                             bool bf16, const TmaOperand &a,
                             const TmaOperand &bm, const SplitK &sk,
                             ConsumerEpilogue *epilogue, Operation *anchor,
                             bool persistent) {
  OpBuilder &b = k.b;
  Location loc = k.loc;
  MLIRContext *ctx = b.getContext();
  // Boxes: K-major operands are read 64 K columns (128 bytes) wide, all
  // the tile's rows at once; MN-major ones 64 x 64 per 8 KiB atom.
  Value mapA = o.aTransposed ? tensorMap(k, a, kBK, 64, bf16, anchor)
                             : tensorMap(k, a, kBM, kBK, bf16, anchor);
  Value mapB = o.bTransposed ? tensorMap(k, bm, t.bn, kBK, bf16, anchor)
                             : tensorMap(k, bm, kBK, 64, bf16, anchor);
  Value one = k.index(1);
  // Blocks walk the units of work, a tile of C and a split of K each
  // (tiles in tileOrigin's order, a tile's splits one after the other):
  // one each, or with `persistent` as many blocks as the GPU has
  // multiprocessors.
  int64_t tilesC = o.tilesN(t) * o.tilesM();
  int64_t units = tilesC * sk.splits;
  Value blocks = k.index(units);
  if (persistent) {
    Value sms = runtimeCall(k, anchor, kMultiprocessorsFn, {}).getResult(0);
    blocks = k.minI(arith::IndexCastUIOp::create(b, loc, b.getIndexType(), sms),
                    units);
  }
  // The ring, aligned to 1024 bytes (the swizzle's period, which TMA
  // requires of a 128-byte-swizzled destination), then the barriers:
  // full[S], empty[S].
  int64_t barrierBytes = 2 * t.stages * 8;
  Frame f = startKernel(k, o, t, kTmaThreads,
                        t.sharedBytes() + barrierBytes, sk.splits, blocks);
  gpu::LaunchOp launch = f.launch;
  Value tid = f.tid, ring = f.ring;
  Value firstUnit = launch.getBlockIds().x, unitStep = launch.getGridSize().x;
  // K tiles per unit.
  int64_t tiles = o.kTiles() / sk.splits;
  // A unit of this block's: its tile's origin and index, its split, and
  // how many K tiles the block went through before it, which numbers the
  // ring's stages and phases across units.
  struct Unit {
    Value m0, n0, tile, split, before;
  };
  auto forEachUnit = [&](function_ref<void(const Unit &)> body) {
    auto loop = scf::ForOp::create(b, loc, firstUnit, k.index(units),
                                   unitStep, ValueRange{k.index(0)});
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    Value unit = loop.getInductionVar();
    Value tile = sk.splits > 1 ? k.div(unit, sk.splits) : unit;
    Value split = sk.splits > 1 ? k.rem(unit, sk.splits) : k.index(0);
    auto [m0, n0] = tileOrigin(k, o, t, tile);
    body({m0, n0, tile, split, loop.getRegionIterArgs()[0]});
    scf::YieldOp::create(b, loc, k.add(loop.getRegionIterArgs()[0], tiles));
  };
  Value barriers = k.add(ring, t.stages * t.stageBytes());
  Type i64 = b.getI64Type();
  auto sharedPtr = [&](Value address) -> Value {
    Value bits = arith::IndexCastUIOp::create(b, loc, i64, address);
    return LLVM::IntToPtrOp::create(b, loc,
                                    LLVM::LLVMPointerType::get(ctx, 3), bits);
  };
  auto full = [&](Value s) { return sharedPtr(k.add(barriers, k.mul(s, 8))); };
  auto empty = [&](Value s) {
    return sharedPtr(k.add(barriers, k.add(k.mul(s, 8), t.stages * 8)));
  };
  auto waitParity = [&](Value barrier, Value parity) {
    NVVM::MBarrierTryWaitParityOp::create(b, loc, barrier, k.toI32(parity),
                                          k.i32(1000000));
  };

  // Thread 0 initializes the barriers; the block-wide barrier makes them
  // visible before anyone waits.
  {
    OpBuilder::InsertionGuard guard(b);
    auto first = scf::IfOp::create(b, loc, k.equal(tid, 0), false);
    b.setInsertionPointToStart(&first.getThenRegion().front());
    for (int64_t s = 0; s < t.stages; ++s) {
      NVVM::MBarrierInitOp::create(b, loc, full(k.index(s)), k.i32(1),
                                   Value());
      NVVM::MBarrierInitOp::create(b, loc, empty(k.index(s)),
                                   k.i32(kConsumerWarps), Value());
    }
    NVVM::FenceMbarrierInitOp::create(b, loc);
  }
  gpu::BarrierOp::create(b, loc);

  Value warpgroup = k.div(tid, 128);
  auto roles = scf::IfOp::create(b, loc, k.equal(warpgroup, 0), true);

  // The producer.
  b.setInsertionPointToStart(&roles.getThenRegion().front());
  NVVM::SetMaxRegisterOp::create(b, loc, kProducerRegisters,
                                 NVVM::SetMaxRegisterAction::decrease);
  {
    OpBuilder::InsertionGuard guard(b);
    auto producer = scf::IfOp::create(b, loc, k.equal(tid, 0), false);
    b.setInsertionPointToStart(&producer.getThenRegion().front());
    auto generic = [&](Value map) -> Value {
      return LLVM::IntToPtrOp::create(b, loc, LLVM::LLVMPointerType::get(ctx),
                                      map);
    };
    Value ptrA = generic(mapA), ptrB = generic(mapB);
    // The descriptors were written by a copy from the host: the tensormap
    // proxy must see them.
    for (Value map : {ptrA, ptrB})
      NVVM::FenceProxyAcquireOp::create(b, loc, NVVM::MemScopeKind::GPU, map,
                                        k.i32(128));
    forEachUnit([&](const Unit &u) {
      OpBuilder::InsertionGuard tileGuard(b);
      auto loop = scf::ForOp::create(b, loc, k.index(0), k.index(tiles), one);
      b.setInsertionPointToStart(loop.getBody());
      Value kt = loop.getInductionVar();
      Value m0 = u.m0, n0 = u.n0;
      // The block's K tile count so far numbers the stage and its round.
      Value count = k.add(u.before, kt);
      Value s = k.rem(count, t.stages);
      Value round = k.div(count, t.stages);
      // Round r refills the stage that round r - 1's tile used: wait for
      // the phase of `empty` that its release completed (parity (r - 1) % 2;
      // for r = 0, the phase before the first, which counts as complete).
      waitParity(empty(s), k.xorI(k.rem(round, 2), one));
      Value fullS = full(s);
      NVVM::MBarrierArriveExpectTxOp::create(
          b, loc, Type(), fullS, k.i32(t.stageBytes()),
          NVVM::MemScopeKind::CTA, /*relaxed=*/false, Value());
      Value stage = k.add(ring, k.mul(s, t.stageBytes()));
      Value k0 = k.mul(sk.splits > 1 ? k.add(k.mul(u.split, tiles), kt) : kt,
                       kBK);
      auto copy = [&](Value map, Value address, Value inner, Value outer) {
        Value dst = LLVM::AddrSpaceCastOp::create(
            b, loc, LLVM::LLVMPointerType::get(ctx, 7), sharedPtr(address));
        NVVM::CpAsyncBulkTensorGlobalToSharedClusterOp::create(
            b, loc, dst, map, ValueRange{k.toI32(inner), k.toI32(outer)},
            fullS, ValueRange{}, Value(), Value(), NVVM::TMALoadMode::TILE,
            /*isCTAOnly=*/false, NVVM::CTAGroupKindAttr(), Value());
      };
      if (o.aTransposed) // K x M: two atoms of 64 M columns
        for (int64_t j = 0; j < kBM / 64; ++j)
          copy(ptrA, k.add(stage, j * 8192), k.add(m0, j * 64), k0);
      else
        copy(ptrA, stage, k0, m0);
      Value bBase = k.add(stage, kTileBytesA);
      if (o.bTransposed) // N x K
        copy(ptrB, bBase, k0, n0);
      else // K x N: bn / 64 atoms
        for (int64_t j = 0; j < t.bn / 64; ++j)
          copy(ptrB, k.add(bBase, j * 8192), k.add(n0, j * 64), k0);
    });
  }

  // The consumers.
  b.setInsertionPointToStart(&roles.getElseRegion().front());
  NVVM::SetMaxRegisterOp::create(b, loc, kConsumerRegisters,
                                 NVVM::SetMaxRegisterAction::increase);
  Value consumer = arith::SubIOp::create(b, loc, warpgroup, one);
  Type f32 = b.getF32Type();
  auto accType = LLVM::LLVMStructType::getLiteral(
      ctx, SmallVector<Type>(t.accumulators(), f32));
  Value lane = k.rem(tid, 32);
  auto releaseStage = [&](Value condition, Value count) {
    OpBuilder::InsertionGuard inner(b);
    auto ifOp = scf::IfOp::create(b, loc, condition, false);
    b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    NVVM::MBarrierArriveOp::create(b, loc, Type(),
                                   empty(k.rem(count, t.stages)), Value(),
                                   NVVM::MemScopeKind::CTA, false);
  };
  forEachUnit([&](const Unit &u) {
    Value before = u.before;
    Value zero = LLVM::ZeroOp::create(b, loc, accType);
    auto loop = scf::ForOp::create(b, loc, k.index(0), k.index(tiles), one,
                                   ValueRange{zero});
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(loop.getBody());
      Value kt = loop.getInductionVar();
      Value count = k.add(before, kt);
      Value s = k.rem(count, t.stages);
      waitParity(full(s), k.rem(k.div(count, t.stages), 2));
      Value stage = k.add(ring, k.mul(s, t.stageBytes()));
      Value acc = products(k, o, t, bf16, accType, loop.getRegionIterArgs()[0],
                           stage, consumer);
      // K tile kt - 1's products are done: its stage may be refilled.
      NVVM::WgmmaWaitGroupSyncOp::create(b, loc, 1);
      releaseStage(arith::AndIOp::create(
                       b, loc,
                       arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ugt,
                                             kt, k.index(0)),
                       k.equal(lane, 0)),
                   arith::SubIOp::create(b, loc, count, one));
      scf::YieldOp::create(b, loc, acc);
    }
    NVVM::WgmmaWaitGroupSyncOp::create(b, loc, 0);
    // The last K tile's stage, for the block's next tile.
    releaseStage(k.equal(lane, 0), k.add(before, tiles - 1));
    finishTile(k, o, t, sk, loop.getResult(0), k.rem(tid, 128), consumer, u.m0,
               u.n0, u.split, u.tile, epilogue);
  });
  b.setInsertionPointToEnd(&launch.getBody().front());
  gpu::TerminatorOp::create(b, loc);
  return launch;
}

} // namespace

LogicalResult buildWgmmaMatmul(linalg::GenericOp g, bool bf16,
                               const WgmmaOptions &options,
                               ConsumerEpilogue *epilogue,
                               PaddedCopies *copies) {
  Location loc = g.getLoc();
  MLIRContext *ctx = g.getContext();
  AffineMap lhsMap = g.getIndexingMapsArray()[0];
  AffineMap rhsMap = g.getIndexingMapsArray()[1];
  Operands o;
  o.a = g.getDpsInputs()[0];
  o.bm = g.getDpsInputs()[1];
  o.c = g.getDpsInits()[0];
  o.aTransposed = lhsMap.getResult(0) == getAffineDimExpr(2, ctx);
  o.bTransposed = rhsMap.getResult(0) == getAffineDimExpr(1, ctx);
  auto aType = cast<MemRefType>(o.a.getType());
  auto cType = cast<MemRefType>(o.c.getType());
  o.m = cType.getDimSize(0);
  o.n = cType.getDimSize(1);
  o.k = aType.getDimSize(o.aTransposed ? 0 : 1);
  int64_t tileN = options.tileN, stages = options.stages;
  // Six stages of 128 x 256 would not fit in shared memory.
  assert((tileN == 128 || tileN == 256) && stages >= 3 &&
         stages <= (tileN == 128 ? 6 : 4) &&
         "unsupported wgmma tile");
  // Columns that 256 does not divide get 128.
  Tile t{o.n % tileN ? 128 : tileN, stages, options.groupRows};
  int64_t tilesM = o.tilesM(), tilesN = o.tilesN(t), kTiles = o.kTiles();
  SplitK sk;
  if (options.splitK < 0)
    sk.splits = plannedSplits(tilesM * tilesN, kTiles, options.multiprocessors);
  else if (options.splitK > 1 && kTiles % options.splitK == 0)
    sk.splits = options.splitK;

  // With an epilogue, the kernel replaces its consumer too, in its place.
  OpBuilder b(epilogue ? epilogue->consumerOp() : g.getOperation());
  Builder k{b, loc};
  // The copies read 16-byte pieces from 16-byte-aligned addresses: an
  // operand whose rows are not a whole number of pieces is read from a
  // copy whose rows are (the logits' gradient with GPT-2's 50257 tokens),
  // an earlier kernel's if the operand is unchanged since.
  Operation *point = &*b.getInsertionPoint();
  PaddedCopies local;
  if (!copies)
    copies = &local;
  // The keys of the copies read.
  SmallVector<Value> read;
  int64_t logicalCols[2] = {cast<MemRefType>(o.a.getType()).getDimSize(1),
                            cast<MemRefType>(o.bm.getType()).getDimSize(1)};
  for (Value *operand : {&o.a, &o.bm}) {
    auto type = cast<MemRefType>(operand->getType());
    int64_t cols = type.getDimSize(1);
    if (cols % 8 == 0)
      continue;
    auto it = llvm::find_if(copies->copies, [&](auto &entry) {
      return sameView(entry.first, *operand);
    });
    if (it != copies->copies.end() &&
        reuseCopy(it->second.first, *operand, point, *copies)) {
      read.push_back(it->first);
      *operand = rootBuffer(it->second.first->getOperand(1));
      continue;
    }
    int64_t rows = type.getDimSize(0);
    Value copy = memref::AllocOp::create(
        b, loc,
        MemRefType::get({rows, static_cast<int64_t>(llvm::alignTo(cols, 8))},
                        type.getElementType()));
    Value view = memref::SubViewOp::create(
        b, loc, copy, ArrayRef<int64_t>{0, 0}, ArrayRef<int64_t>{rows, cols},
        ArrayRef<int64_t>{1, 1});
    copies->copies[*operand] = {
        linalg::CopyOp::create(b, loc, *operand, view), nullptr};
    read.push_back(*operand);
    *operand = copy;
  }
  if (sk.splits > 1) {
    // Split-K's partial tiles and arrival counters, for this kernel alone.
    Type f32 = b.getF32Type(), i32 = b.getI32Type();
    sk.partials = memref::AllocOp::create(
        b, loc,
        MemRefType::get({sk.splits, tilesM * kBM, tilesN * t.bn}, f32));
    sk.counters = memref::AllocOp::create(
        b, loc, MemRefType::get({tilesM * tilesN * 2}, i32));
    // A memset on the kernel's stream rather than a fill kernel.
    gpu::MemsetOp::create(b, loc, Type(), ValueRange{}, sk.counters,
                          k.i32(0));
  }
  gpu::LaunchOp launch;
  std::optional<TmaOperand> tmaA, tmaB;
  if (options.tma) {
    tmaA = tmaOperand(o.a, logicalCols[0]);
    tmaB = tmaOperand(o.bm, logicalCols[1]);
  }
  if (tmaA && tmaB)
    launch = buildTmaKernel(k, o, t, bf16, *tmaA, *tmaB, sk, epilogue, point,
                            options.persistent);
  else
    launch = buildCpAsyncKernel(k, o, t, bf16, sk, epilogue);
  b.setInsertionPointAfter(launch);
  if (sk.splits > 1) {
    memref::DeallocOp::create(b, loc, sk.partials);
    memref::DeallocOp::create(b, loc, sk.counters);
  }
  // A copy is freed after the last kernel that reads it.
  copies->kernels.insert(launch);
  for (Value key : read) {
    auto &[fill, dealloc] = copies->copies[key];
    if (!dealloc)
      dealloc = memref::DeallocOp::create(b, loc,
                                          rootBuffer(fill->getOperand(1)));
    else if (dealloc->isBeforeInBlock(launch))
      dealloc->moveAfter(launch);
  }
  g.erase();
  if (epilogue)
    epilogue->eraseConsumer();
  return success();
}

} // namespace tessera
