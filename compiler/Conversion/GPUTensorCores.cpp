//===- GPUTensorCores.cpp - Tensor-core matmul kernels --------------------===//
//
// Two passes. `tessera-gpu-select-tensor-cores` (tensors) finds the
// contractions whose operands are exactly representable in bf16/f16 - the
// products of the mixed-precision policy - and rebuilds them on
// half-precision operands. `tessera-gpu-tensor-core-matmuls` (buffers) gives
// each of them a tiled schedule that ends in ldmatrix + mma.sync.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/Passes.h"
#include "compiler/Conversion/MmaUtils.h"
#include "compiler/Conversion/ConsumerEpilogue.h"
#include "compiler/Conversion/NNToLinalg/FlashAttention.h"
#include "compiler/Conversion/NNToLinalg/RowKernels.h"
#include "compiler/Conversion/NNToLinalg/StandIn.h"

#include "dialects/precision/IR/PrecisionDialect.h"

#include "mlir/Conversion/VectorToGPU/VectorToGPU.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Transform/Interfaces/TransformInterfaces.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"


using namespace mlir;

namespace tessera {
#define GEN_PASS_DEF_GPUSELECTTENSORCOREMATMULS
#define GEN_PASS_DEF_GPUTENSORCOREMATMULS
#include "compiler/Conversion/Passes.h.inc"

namespace {

/// Set by the schedule on the gpu.launch it generates.
constexpr llvm::StringLiteral kMmaLaunchAttr = "tessera.mma_launch";

/// Block tile (M x N), K step and warp tile of the schedule. 128 x 128 with
/// 2 x 2 warps of 64 x 64 keeps 64 accumulators of m16n8 per warp in
/// registers (ptxas: 168-216 registers, no spills).
constexpr int64_t kTileM = 128, kTileN = 128, kTileK = 32, kWarpTile = 64;
constexpr int64_t kThreads = 128;
/// Halves per 16-byte cp.async.
constexpr int64_t kVectorHalves = 8;

//===----------------------------------------------------------------------===//
// Selection (tensors)
//===----------------------------------------------------------------------===//

/// A contraction out[lead..., n] = sum_k a[lead..., k] * b[k, n] (or
/// b[n, k]), seen as an M x N x K matmul once the leading dims are
/// flattened.
struct Contraction {
  linalg::GenericOp op;
  bool rhsTransposed;
  int64_t m, n, k;
};

/// Whether the mma.sync schedule's tiles cover an M x N x K matmul exactly
/// (it has no partial tiles).
bool tiles(int64_t m, int64_t n, int64_t k) {
  return m % kTileM == 0 && n % kTileN == 0 && k % kTileK == 0;
}

bool isZero(Value v) {
  return matchPattern(v, m_AnyZeroFloat());
}

/// Matches the contractions convert-nn-to-linalg builds for linear and
/// rank-2-weight matmuls: a zero-filled f32 accumulator and a body
/// `acc + a * b`.
std::optional<Contraction> matchContraction(linalg::GenericOp g) {
  if (g.getNumDpsInputs() != 2 || g.getNumDpsInits() != 1 ||
      g.getNumResults() != 1)
    return std::nullopt;
  auto out = dyn_cast<RankedTensorType>(g.getResult(0).getType());
  if (!out || !out.hasStaticShape() || !out.getElementType().isF32() ||
      out.getRank() < 2)
    return std::nullopt;
  unsigned r = out.getRank();
  auto iters = g.getIteratorTypesArray();
  if (iters.size() != r + 1 || iters.back() != utils::IteratorType::reduction ||
      llvm::count(iters, utils::IteratorType::reduction) != 1)
    return std::nullopt;

  MLIRContext *ctx = g.getContext();
  auto dims = [&](ArrayRef<unsigned> ds) {
    SmallVector<AffineExpr> e;
    for (unsigned d : ds)
      e.push_back(getAffineDimExpr(d, ctx));
    return AffineMap::get(r + 1, 0, e, ctx);
  };
  SmallVector<unsigned> outDims, lhsDims;
  for (unsigned i = 0; i < r; ++i)
    outDims.push_back(i);
  for (unsigned i = 0; i + 1 < r; ++i)
    lhsDims.push_back(i);
  lhsDims.push_back(r);
  auto maps = g.getIndexingMapsArray();
  if (maps[0] != dims(lhsDims) || maps[2] != dims(outDims))
    return std::nullopt;
  bool transposed;
  if (maps[1] == dims({r - 1, r}))
    transposed = true;
  else if (maps[1] == dims({r, r - 1}))
    transposed = false;
  else
    return std::nullopt;

  // Body: yield acc + a * b (either operand order).
  Block &body = g.getRegion().front();
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  auto add = yield.getOperand(0).getDefiningOp<arith::AddFOp>();
  if (!add || body.getOperations().size() != 3)
    return std::nullopt;
  Value acc = body.getArgument(2);
  Value prod = add.getLhs() == acc ? add.getRhs() : add.getLhs();
  auto mul = prod.getDefiningOp<arith::MulFOp>();
  if (!mul || (add.getLhs() != acc && add.getRhs() != acc))
    return std::nullopt;
  auto isArg = [&](Value v, unsigned i) { return v == body.getArgument(i); };
  if (!((isArg(mul.getLhs(), 0) && isArg(mul.getRhs(), 1)) ||
        (isArg(mul.getLhs(), 1) && isArg(mul.getRhs(), 0))))
    return std::nullopt;

  auto fill = g.getDpsInits()[0].getDefiningOp<linalg::FillOp>();
  if (!fill || !isZero(fill.getInputs()[0]))
    return std::nullopt;

  int64_t m = 1;
  for (int64_t d : out.getShape().drop_back())
    m *= d;
  int64_t k = cast<RankedTensorType>(g.getDpsInputs()[0].getType())
                  .getShape()
                  .back();
  return Contraction{g, transposed, m, out.getShape().back(), k};
}

/// Builds, next to each f32 value that holds exactly representable
/// half-precision numbers, an f16-typed tensor with the same values' bits.
class HalfOperands {
public:
  explicit HalfOperands(MLIRContext *ctx) : b(ctx) {}

  /// The half-precision twin of `v`, or null when `v` is not known to be
  /// representable. `format` ("bf16"/"f16") is set by the first rounding
  /// met and must match the later ones.
  Value get(Value v, std::string &format) {
    auto it = cache.find(v);
    if (it != cache.end()) {
      auto [half, known] = it->second;
      if (!format.empty() && format != known)
        return {};
      format = known;
      return half;
    }
    Value half = build(v, format);
    if (half)
      cache[v] = {half, format};
    return half;
  }

  /// Records `half` as the twin of `wide` (whose values it holds).
  void seed(Value wide, Value half, StringRef format) {
    cache[wide] = {half, format.str()};
  }

private:
  RankedTensorType halfType(Type t) {
    auto rt = cast<RankedTensorType>(t);
    return RankedTensorType::get(rt.getShape(), b.getF16Type());
  }

  /// `v` rounded to bf16 (as f16 bits) or f16, built at b's insertion
  /// point.
  Value rounding(Value v, bool bf16, Location loc) {
    auto t = cast<RankedTensorType>(v.getType());
    auto id = AffineMap::getMultiDimIdentityMap(t.getRank(), b.getContext());
    Value empty = tensor::EmptyOp::create(b, loc, t.getShape(), b.getF16Type());
    return linalg::GenericOp::create(
               b, loc, TypeRange{halfType(t)}, ValueRange{v}, ValueRange{empty},
               SmallVector<AffineMap>{id, id},
               SmallVector<utils::IteratorType>(t.getRank(),
                                                utils::IteratorType::parallel),
               [&](OpBuilder &nb, Location l, ValueRange a) {
                 Value h = arith::TruncFOp::create(
                     nb, l, bf16 ? nb.getBF16Type() : nb.getF16Type(), a[0]);
                 if (bf16)
                   h = arith::BitcastOp::create(nb, l, nb.getF16Type(), h);
                 linalg::YieldOp::create(nb, l, h);
               })
        .getResult(0);
  }

  /// The half-precision `src` transposed by `permutation`, built at b's
  /// insertion point; a transpose that undoes `src`'s own transpose gives
  /// that transpose's input.
  Value transposed(Value src, ArrayRef<int64_t> permutation, Location loc) {
    if (auto inner = src.getDefiningOp<linalg::TransposeOp>()) {
      ArrayRef<int64_t> first = inner.getPermutation();
      if (llvm::all_of(llvm::seq<size_t>(0, permutation.size()), [&](size_t i) {
            return first[permutation[i]] == int64_t(i);
          }))
        return inner.getInput();
    }
    auto t = cast<RankedTensorType>(src.getType());
    SmallVector<int64_t> shape;
    for (int64_t d : permutation)
      shape.push_back(t.getDimSize(d));
    Value empty = tensor::EmptyOp::create(b, loc, shape, t.getElementType());
    return linalg::TransposeOp::create(b, loc, src, empty, permutation)
        .getResult()[0];
  }

  Value build(Value v, std::string &format) {
    Operation *def = v.getDefiningOp();
    if (!def)
      return {};
    Location loc = def->getLoc();
    if (auto round = dyn_cast<precision::RoundOp>(def)) {
      if (!format.empty() && format != round.getFormat())
        return {};
      format = round.getFormat().str();
      // Rounding what is already exact changes nothing.
      auto known = cache.find(round.getInput());
      if (known != cache.end() && known->second.second == format)
        return known->second.first;
      b.setInsertionPointAfter(round);
      // A rounded transpose is the transpose of the rounded matrix: the
      // matmul then reads that in place (transposedSource) and the f32
      // transpose goes (the tied head's weight, 0.46 GB in GPT-2).
      if (auto tr = round.getInput().getDefiningOp<linalg::TransposeOp>())
        return transposed(rounding(tr.getInput(), format == "bf16", loc),
                          tr.getPermutation(), loc);
      return rounding(round.getInput(), format == "bf16", loc);
    }
    if (auto tr = dyn_cast<linalg::TransposeOp>(def)) {
      Value src = get(tr.getInput(), format);
      if (!src)
        return {};
      b.setInsertionPointAfter(tr);
      return transposed(src, tr.getPermutation(), loc);
    }
    if (auto rs = dyn_cast<tensor::ReshapeOp>(def)) {
      Value src = get(rs.getSource(), format);
      if (!src)
        return {};
      b.setInsertionPointAfter(rs);
      return tensor::ReshapeOp::create(b, loc, halfType(rs.getType()), src,
                                       rs.getShape());
    }
    if (auto cs = dyn_cast<tensor::CollapseShapeOp>(def)) {
      Value src = get(cs.getSrc(), format);
      if (!src)
        return {};
      b.setInsertionPointAfter(cs);
      return tensor::CollapseShapeOp::create(b, loc, halfType(cs.getType()),
                                             src, cs.getReassociationIndices());
    }
    if (auto slice = dyn_cast<tensor::ExtractSliceOp>(def)) {
      Value src = get(slice.getSource(), format);
      if (!src)
        return {};
      b.setInsertionPointAfter(slice);
      return tensor::ExtractSliceOp::create(
          b, loc, halfType(slice.getType()), src, slice.getMixedOffsets(),
          slice.getMixedSizes(), slice.getMixedStrides());
    }
    if (auto es = dyn_cast<tensor::ExpandShapeOp>(def)) {
      Value src = get(es.getSrc(), format);
      if (!src)
        return {};
      b.setInsertionPointAfter(es);
      return tensor::ExpandShapeOp::create(b, loc, halfType(es.getType()), src,
                                           es.getReassociationIndices());
    }
    return {};
  }

  OpBuilder b;
  llvm::DenseMap<Value, std::pair<Value, std::string>> cache;
};

/// The matrix that the 2-D `v` transposes (built with `b`), or null: the
/// input of a 2-D transpose, or, for `v` = collapse_shape(transpose(x)) of
/// an [x0, ..., y] value x whose last dimension moved first (the
/// [y, x0 * ...] operand of a weight's gradient), x collapsed to
/// [x0 * ..., y]. The contraction then reads that matrix with the other
/// indexing map, and no transposed copy is made: the kernels read either
/// orientation.
Value transposedSource(Value v, OpBuilder &b) {
  if (auto tr = v.getDefiningOp<linalg::TransposeOp>())
    return tr.getPermutation() == ArrayRef<int64_t>{1, 0} ? tr.getInput()
                                                          : Value();
  auto collapse = v.getDefiningOp<tensor::CollapseShapeOp>();
  auto tr = collapse ? collapse.getSrc().getDefiningOp<linalg::TransposeOp>()
                     : linalg::TransposeOp();
  if (!tr)
    return {};
  int64_t r = tr.getPermutation().size();
  SmallVector<int64_t> lastFirst = {r - 1};
  ReassociationIndices rest, lead;
  for (int64_t i = 0; i + 1 < r; ++i) {
    lastFirst.push_back(i);
    rest.push_back(i + 1);
    lead.push_back(i);
  }
  SmallVector<ReassociationIndices> expected = {{0}, rest};
  if (tr.getPermutation() != ArrayRef<int64_t>(lastFirst) ||
      collapse.getReassociationIndices() != expected)
    return {};
  return tensor::CollapseShapeOp::create(
      b, v.getLoc(), tr.getInput(),
      SmallVector<ReassociationIndices>{lead, {r - 1}});
}

/// Rebuilds `c` on half-precision operands; returns false (and changes
/// nothing that matters: unused twins are erased by DCE) when an operand
/// has no twin.
bool rewriteOnHalves(const Contraction &c, HalfOperands &halves,
                     bool anyRows) {
  linalg::GenericOp g = c.op;
  std::string format;
  Value lhs = halves.get(g.getDpsInputs()[0], format);
  Value rhs = lhs ? halves.get(g.getDpsInputs()[1], format) : Value();
  if (!lhs || !rhs)
    return false;

  OpBuilder b(g);
  Location loc = g.getLoc();
  MLIRContext *ctx = b.getContext();
  auto out = cast<RankedTensorType>(g.getResult(0).getType());
  int64_t r = out.getRank();
  // Operands that are transposes are read in place, as K x M (A) or in B's
  // other orientation, where the rows read that way are whole 16-byte
  // pieces (always, for shapes that tile), or with `anyRows` (the wgmma
  // kernel, which reads other rows from a copy whose rows are: a copy of
  // the logits' gradient with GPT-2's 50257 tokens, which the input
  // gradient's kernel reads too, rather than a transposed twin).
  bool lhsTransposed = false, rhsTransposed = c.rhsTransposed;
  if (r == 2 && (anyRows || c.m % kVectorHalves == 0))
    if (Value source = transposedSource(lhs, b)) {
      lhs = source;
      lhsTransposed = true;
    }
  if (anyRows || (rhsTransposed ? c.n : c.k) % kVectorHalves == 0)
    if (Value source = transposedSource(rhs, b)) {
      rhs = source;
      rhsTransposed = !rhsTransposed;
    }
  ReassociationIndices lead;
  for (int64_t i = 0; i + 1 < r; ++i)
    lead.push_back(i);
  SmallVector<ReassociationIndices> flatten = {lead, {r - 1}};
  if (r > 2)
    lhs = tensor::CollapseShapeOp::create(b, loc, lhs, flatten);

  auto flatOut = RankedTensorType::get({c.m, c.n}, b.getF32Type());
  Value zero = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0.0));
  Value init = linalg::FillOp::create(
                   b, loc, zero,
                   ValueRange{tensor::EmptyOp::create(b, loc, flatOut.getShape(),
                                                      b.getF32Type())})
                   .getResult(0);
  AffineExpr m = getAffineDimExpr(0, ctx), n = getAffineDimExpr(1, ctx),
             k = getAffineDimExpr(2, ctx);
  auto map = [&](AffineExpr x, AffineExpr y) {
    return AffineMap::get(3, 0, {x, y}, ctx);
  };
  auto mm = linalg::GenericOp::create(
      b, loc, TypeRange{flatOut}, ValueRange{lhs, rhs}, ValueRange{init},
      SmallVector<AffineMap>{lhsTransposed ? map(k, m) : map(m, k),
                             rhsTransposed ? map(n, k) : map(k, n), map(m, n)},
      SmallVector<utils::IteratorType>{utils::IteratorType::parallel,
                                       utils::IteratorType::parallel,
                                       utils::IteratorType::reduction},
      [&](OpBuilder &nb, Location l, ValueRange a) {
        // bf16 bits travel in f16-typed tensors; read them back as bf16.
        auto widen = [&](Value h) -> Value {
          if (format == "bf16")
            h = arith::BitcastOp::create(nb, l, nb.getBF16Type(), h);
          return arith::ExtFOp::create(nb, l, nb.getF32Type(), h);
        };
        Value x = widen(a[0]);
        Value y = widen(a[1]);
        Value p = arith::MulFOp::create(nb, l, x, y);
        linalg::YieldOp::create(nb, l,
                                arith::AddFOp::create(nb, l, a[2], p).getResult());
      });
  mm->setAttr(kMmaAttr, b.getStringAttr(format));
  Value result = mm.getResult(0);
  if (r > 2)
    result = tensor::ExpandShapeOp::create(b, loc, out, result, flatten);
  g.getResult(0).replaceAllUsesWith(result);
  g.erase();
  return true;
}

/// The half-precision values of an attention operand `t` ([N, T, C] f32,
/// N = B H) in `format`: when t is the heads of x ([B, T, H, C]) moved
/// ahead of the sequence, x's twin itself, which the kernel reads in
/// place; otherwise t's twin. Null when there is neither.
Value attentionHalf(Value t, StringRef format, HalfOperands &halves) {
  std::string f = format.str();
  if (auto collapse = t.getDefiningOp<tensor::CollapseShapeOp>()) {
    Value heads = collapse.getSrc();
    if (auto round = heads.getDefiningOp<precision::RoundOp>())
      if (round.getFormat() == format)
        heads = round.getInput();
    auto tr = heads.getDefiningOp<linalg::TransposeOp>();
    SmallVector<ReassociationIndices> batchAndHeads = {{0, 1}, {2}, {3}};
    if (tr && collapse.getReassociationIndices() == batchAndHeads &&
        tr.getPermutation() == ArrayRef<int64_t>{0, 2, 1, 3})
      if (Value x = halves.get(tr.getInput(), f))
        return x;
  }
  return halves.get(t, f);
}

/// A gradient an mma attention stand-in writes as f32 [B H, T, D], which
/// is then rounded to the attention's format, moved to [B, T, H, D],
/// reshaped to [B, T, H D] and inserted into a larger tensor (the
/// gradient of the fused q/k/v projection).
struct GradPiece {
  gpu::LaunchOp launch;
  size_t output;
  int64_t heads;
  std::string format;
};

/// The single user of `v`, if it has one.
Operation *onlyUser(Value v) {
  return v.hasOneUse() ? *v.getUsers().begin() : nullptr;
}

/// The [B, T, H D] tensor that `read`, an attention kernel's f32
/// [B H, T, D] output, becomes when it is only split into heads, rounded
/// to `format`, moved to [B, T, H, D] and has its heads merged; null
/// otherwise. Sets `heads`.
Value matchMergedHeads(bufferization::ToTensorOp read, StringRef format,
                       int64_t &heads) {
  auto expand = dyn_cast_or_null<tensor::ExpandShapeOp>(onlyUser(read));
  SmallVector<ReassociationIndices> batchAndHeads = {{0, 1}, {2}, {3}};
  if (!expand || expand.getReassociationIndices() != batchAndHeads)
    return {};
  auto round = dyn_cast_or_null<precision::RoundOp>(onlyUser(expand));
  if (!round || round.getFormat() != format)
    return {};
  auto tr = dyn_cast_or_null<linalg::TransposeOp>(onlyUser(round));
  if (!tr || tr.getPermutation() != ArrayRef<int64_t>{0, 2, 1, 3})
    return {};
  Operation *merge = onlyUser(tr.getResult()[0]);
  ArrayRef<int64_t> bthd =
      cast<RankedTensorType>(tr.getResult()[0].getType()).getShape();
  auto merged = [&](Operation *op) -> Value {
    auto t = dyn_cast_or_null<RankedTensorType>(
        op && op->getNumResults() == 1 ? op->getResult(0).getType() : Type());
    if (!t || t.getShape() != ArrayRef<int64_t>{bthd[0], bthd[1],
                                                bthd[2] * bthd[3]})
      return {};
    if (isa<tensor::ReshapeOp>(op))
      return op->getResult(0);
    auto cs = dyn_cast<tensor::CollapseShapeOp>(op);
    SmallVector<ReassociationIndices> headsMerged = {{0}, {1}, {2, 3}};
    if (cs && cs.getReassociationIndices() == headsMerged)
      return cs.getResult();
    return {};
  };
  Value result = merged(merge);
  if (result)
    heads = expand.getResultType().getDimSize(1);
  return result;
}

/// The to_tensor of stand-in output `alloc` of `launch` when that is its
/// only reader outside the launch besides `allowed` readers, or null.
bufferization::ToTensorOp
onlyTensorOf(gpu::LaunchOp launch, Value alloc,
             function_ref<bool(Operation *)> allowed = nullptr) {
  bufferization::ToTensorOp read;
  for (Operation *user : alloc.getUsers()) {
    if (launch->isAncestor(user) || (allowed && allowed(user)))
      continue;
    auto t = dyn_cast<bufferization::ToTensorOp>(user);
    if (!t || read)
      return {};
    read = t;
  }
  return read;
}

/// The insert_slice that ends the chain above from stand-in output
/// `output` (buffer `alloc`) of `launch`, or null.
tensor::InsertSliceOp matchGradPiece(gpu::LaunchOp launch, Value alloc,
                                     StringRef format, int64_t &heads) {
  bufferization::ToTensorOp read = onlyTensorOf(launch, alloc);
  if (!read)
    return {};
  Value pieceValue = matchMergedHeads(read, format, heads);
  if (!pieceValue)
    return {};
  auto insert = dyn_cast_or_null<tensor::InsertSliceOp>(onlyUser(pieceValue));
  if (!insert || insert.getSource() != pieceValue ||
      !insert.hasUnitStride() || insert.getType().getRank() != 3 ||
      !insert.getType().hasStaticShape())
    return {};
  ArrayRef<int64_t> offsets = insert.getStaticOffsets();
  if (ShapedType::isDynamicShape(offsets) || offsets[0] != 0 ||
      offsets[1] != 0)
    return {};
  return insert;
}

/// The f32 values of `half` (an f16-typed tensor of `format`'s bits).
Value widenHalves(OpBuilder &b, Location loc, Value half, StringRef format) {
  auto t = cast<RankedTensorType>(half.getType());
  auto wide = RankedTensorType::get(t.getShape(), b.getF32Type());
  auto id = AffineMap::getMultiDimIdentityMap(t.getRank(), b.getContext());
  Value empty = tensor::EmptyOp::create(b, loc, t.getShape(), b.getF32Type());
  return linalg::GenericOp::create(
             b, loc, TypeRange{wide}, ValueRange{half}, ValueRange{empty},
             SmallVector<AffineMap>{id, id},
             SmallVector<utils::IteratorType>(t.getRank(),
                                              utils::IteratorType::parallel),
             [&](OpBuilder &nb, Location l, ValueRange a) {
               Value h = a[0];
               if (format == "bf16")
                 h = arith::BitcastOp::create(nb, l, nb.getBF16Type(), h);
               linalg::YieldOp::create(
                   nb, l,
                   arith::ExtFOp::create(nb, l, nb.getF32Type(), h).getResult());
             })
      .getResult(0);
}

/// Lets the mma attention gradient kernels write dq, dk and dv straight
/// into the half-precision gradient of the projection they were split
/// from: when each of them is only rounded, moved back to [B, T, H D] and
/// inserted into one tensor that they fill, the kernels round and store
/// into [B, T, H, D] views of a 16-bit buffer of that tensor's shape, and
/// the buffer becomes the tensor's twin. Its f32 readers widen it.
void writeAttentionGradsInPlace(ModuleOp module, HalfOperands &halves) {
  // The final insert_slice of each chain, and the pieces inserted into it.
  llvm::MapVector<Operation *,
                  SmallVector<std::pair<tensor::InsertSliceOp, GradPiece>>>
      chains;
  module.walk([&](gpu::LaunchOp launch) {
    std::optional<MmaAttentionInputs> inputs = mmaAttentionHalfInputs(launch);
    if (!inputs || inputs->gradOutputs.empty())
      return;
    for (auto [i, alloc] : llvm::enumerate(inputs->gradOutputs)) {
      int64_t heads;
      tensor::InsertSliceOp insert =
          matchGradPiece(launch, alloc, inputs->format, heads);
      if (!insert)
        continue;
      Operation *last = insert;
      while (Operation *next = onlyUser(last->getResult(0))) {
        auto ins = dyn_cast<tensor::InsertSliceOp>(next);
        if (!ins || ins.getDest() != last->getResult(0))
          break;
        last = ins;
      }
      chains[last].push_back(
          {insert, GradPiece{launch, i, heads, inputs->format}});
    }
  });
  for (auto &[last, pieces] : chains) {
    // Every insert of the chain must be a piece, down to a tensor.empty.
    auto final = cast<tensor::InsertSliceOp>(last);
    size_t inserts = 0;
    Value base = final.getResult();
    while (auto ins = base.getDefiningOp<tensor::InsertSliceOp>()) {
      ++inserts;
      base = ins.getDest();
    }
    if (!base.getDefiningOp<tensor::EmptyOp>() || inserts != pieces.size())
      continue;
    // The pieces fill the tensor's last dimension side by side (each
    // spans the others whole), so the kernels' writes never overlap.
    RankedTensorType whole = final.getType();
    SmallVector<std::pair<int64_t, int64_t>> columns;
    for (auto &[ins, piece] : pieces) {
      ArrayRef<int64_t> sizes = ins.getStaticSizes();
      if (sizes[0] != whole.getDimSize(0) || sizes[1] != whole.getDimSize(1))
        break;
      columns.push_back({ins.getStaticOffsets()[2], sizes[2]});
    }
    llvm::sort(columns);
    int64_t filled = 0;
    for (auto [offset, size] : columns)
      filled = offset == filled ? filled + size : -1;
    if (columns.size() != pieces.size() || filled != whole.getDimSize(2))
      continue;
    std::string format = pieces.front().second.format;
    if (llvm::any_of(pieces, [&](auto &p) {
          return p.second.launch->getBlock() != final->getBlock() ||
                 p.second.format != format;
        }))
      continue;
    // The buffer goes before the first launch, the tensor after the
    // chain.
    gpu::LaunchOp first = pieces.front().second.launch;
    for (auto &[ins, piece] : pieces)
      if (piece.launch->isBeforeInBlock(first))
        first = piece.launch;
    OpBuilder b(first);
    Location loc = final.getLoc();
    auto bufferType = MemRefType::get(whole.getShape(), b.getF16Type());
    Value buffer = memref::AllocOp::create(b, loc, bufferType);
    for (auto &[ins, piece] : pieces) {
      RankedTensorType part = ins.getSourceType();
      SmallVector<OpFoldResult> offsets = ins.getMixedOffsets();
      SmallVector<OpFoldResult> sizes = ins.getMixedSizes();
      SmallVector<OpFoldResult> strides = ins.getMixedStrides();
      Value view = memref::SubViewOp::create(b, loc, buffer, offsets, sizes,
                                             strides);
      int64_t d = part.getDimSize(2) / piece.heads;
      Value heads = memref::ExpandShapeOp::create(
          b, loc,
          ArrayRef<int64_t>{part.getDimSize(0), part.getDimSize(1),
                            piece.heads, d},
          view, ArrayRef<ReassociationIndices>{{0}, {1}, {2, 3}});
      replaceStandInOutput(piece.launch, piece.output, heads);
    }
    b.setInsertionPointAfter(final);
    Value half = bufferization::ToTensorOp::create(
        b, loc, RankedTensorType::get(whole.getShape(), b.getF16Type()),
        buffer, /*restrict=*/true, /*writable=*/true);
    // The f32 readers of the chain read the buffer, widened.
    Value wide = widenHalves(b, loc, half, format);
    final.getResult().replaceAllUsesWith(wide);
    halves.seed(wide, half, format);
  }
}

/// Lets the mma attention forward kernel write O straight as the
/// half-precision operand of the projection after it: when O (f32
/// [B H, T, D]) is only rounded to the attention's format, moved to
/// [B, T, H, D] and merged to [B, T, H D], and otherwise only read by dq
/// kernels of the same format, the kernel rounds and stores it into a
/// [B, T, H, D] view of a 16-bit buffer of the merged shape, which becomes
/// the merged tensor's twin, and the dq kernels read O (for D = rowsum(dO
/// O)) from the view: the f32 O, and the kernel that moved and rounded it,
/// go. D is then computed from O as the projection saw it, rounded.
void writeAttentionOutputInPlace(ModuleOp module, HalfOperands &halves) {
  SmallVector<std::pair<gpu::LaunchOp, MmaAttentionInputs>> forwards;
  module.walk([&](gpu::LaunchOp launch) {
    std::optional<MmaAttentionInputs> inputs = mmaAttentionHalfInputs(launch);
    if (inputs && inputs->forwardOutput)
      forwards.push_back({launch, std::move(*inputs)});
  });
  for (auto &forward : forwards) {
    gpu::LaunchOp launch = forward.first;
    const MmaAttentionInputs &inputs = forward.second;
    Value alloc = inputs.forwardOutput;
    // The dq kernels that read O, and nothing else but one to_tensor.
    SmallVector<gpu::LaunchOp> readers;
    auto dqReader = [&](Operation *user) {
      auto reader = user->getParentOfType<gpu::LaunchOp>();
      std::optional<MmaAttentionInputs> in =
          reader ? mmaAttentionHalfInputs(reader) : std::nullopt;
      if (!in || in->gradQOutput != alloc || in->format != inputs.format ||
          llvm::is_contained(in->buffers, alloc) ||
          reader->getBlock() != launch->getBlock() ||
          !launch->isBeforeInBlock(reader))
        return false;
      if (!llvm::is_contained(readers, reader))
        readers.push_back(reader);
      return true;
    };
    bufferization::ToTensorOp read = onlyTensorOf(launch, alloc, dqReader);
    int64_t heads;
    Value merged = read ? matchMergedHeads(read, inputs.format, heads) : Value();
    if (!merged)
      continue;
    auto whole = cast<RankedTensorType>(merged.getType());
    OpBuilder b(launch);
    Location loc = launch.getLoc();
    Value buffer = memref::AllocOp::create(
        b, loc, MemRefType::get(whole.getShape(), b.getF16Type()));
    int64_t d = whole.getDimSize(2) / heads;
    Value view = memref::ExpandShapeOp::create(
        b, loc,
        ArrayRef<int64_t>{whole.getDimSize(0), whole.getDimSize(1), heads, d},
        buffer, ArrayRef<ReassociationIndices>{{0}, {1}, {2, 3}});
    replaceStandInOutput(launch, 0, view);
    for (gpu::LaunchOp reader : readers)
      replaceStandInInput(reader, 4, view);
    b.setInsertionPointAfterValue(merged);
    Value half = bufferization::ToTensorOp::create(
        b, loc, RankedTensorType::get(whole.getShape(), b.getF16Type()),
        buffer, /*restrict=*/true, /*writable=*/true);
    Value wide = widenHalves(b, loc, half, inputs.format);
    merged.replaceAllUsesWith(wide);
    halves.seed(wide, half, inputs.format);
  }
}

/// Gives the mma attention stand-ins their operands as halves where the
/// values are exact in the attention's format: the kernels read half the
/// bytes, and the head-major f32 copies of q, k, v and dO go.
void halveAttentionOperands(ModuleOp module, HalfOperands &halves) {
  module.walk([&](gpu::LaunchOp launch) {
    std::optional<MmaAttentionInputs> inputs = mmaAttentionHalfInputs(launch);
    if (!inputs)
      return;
    for (auto [i, buffer] : llvm::enumerate(inputs->buffers)) {
      auto read = buffer.getDefiningOp<bufferization::ToBufferOp>();
      if (!read)
        continue;
      Value half = attentionHalf(read.getTensor(), inputs->format, halves);
      if (!half)
        continue;
      auto t = cast<RankedTensorType>(half.getType());
      MemRefType type = MemRefType::get(t.getShape(), t.getElementType());
      if (t.getRank() == 4) {
        // A view of a larger buffer (q, k, v are slices of one
        // projection): any layout, read without a copy.
        SmallVector<int64_t> strides(4, ShapedType::kDynamic);
        type = MemRefType::get(
            t.getShape(), t.getElementType(),
            StridedLayoutAttr::get(module.getContext(), ShapedType::kDynamic,
                                   strides));
      }
      OpBuilder b(launch);
      Value halfBuffer = bufferization::ToBufferOp::create(
          b, read.getLoc(), type, half, /*readOnly=*/true);
      replaceStandInInput(launch, i, halfBuffer);
    }
  });
}

/// Gives the warp row kernels their rows (cross-entropy's logits, a
/// gradient) as halves where the values are exact in bf16/f16: half the
/// bytes read, and the f32 copy is not written.
void halveRowInputs(ModuleOp module, HalfOperands &halves) {
  module.walk([&](gpu::LaunchOp launch) {
    Value rows = warpRowsFirstInput(launch);
    auto read = rows ? rows.getDefiningOp<bufferization::ToBufferOp>()
                     : bufferization::ToBufferOp();
    if (!read)
      return;
    std::string format;
    Value half = halves.get(read.getTensor(), format);
    if (!half)
      return;
    auto t = cast<RankedTensorType>(half.getType());
    OpBuilder b(launch);
    Value buffer = bufferization::ToBufferOp::create(
        b, read.getLoc(), MemRefType::get(t.getShape(), t.getElementType()),
        half, /*readOnly=*/true);
    replaceStandInInput(launch, 0, buffer);
    setWarpRowsHalves(launch, format);
  });
}

struct GPUSelectTensorCoreMatmulsPass
    : impl::GPUSelectTensorCoreMatmulsBase<GPUSelectTensorCoreMatmulsPass> {
  using Base::Base;
  void runOnOperation() override {
    SmallVector<Contraction> candidates;
    getOperation().walk([&](linalg::GenericOp g) {
      if (auto c = matchContraction(g))
        if (raggedShapes || tiles(c->m, c->n, c->k))
          candidates.push_back(*c);
    });
    HalfOperands halves(&getContext());
    writeAttentionGradsInPlace(getOperation(), halves);
    writeAttentionOutputInPlace(getOperation(), halves);
    for (const Contraction &c : candidates)
      (void)rewriteOnHalves(c, halves, /*anyRows=*/raggedShapes);
    halveAttentionOperands(getOperation(), halves);
    halveRowInputs(getOperation(), halves);
  }
};

//===----------------------------------------------------------------------===//
// Schedule (buffers)
//===----------------------------------------------------------------------===//

/// Threads per dimension that copy a `rows` x `cols` tile (cols contiguous)
/// in 16-byte pieces with kThreads threads.
std::pair<int64_t, int64_t> copyThreads(int64_t rows, int64_t cols) {
  int64_t across = cols / kVectorHalves;
  return {kThreads / across, across};
}

/// The transform-dialect schedule of one marked contraction (the recipe in
/// TOOLCHAIN.md). `%mm` is the contraction, `%root` its function.
std::string scheduleFor(bool rhsTransposed) {
  auto [a0, a1] = copyThreads(kTileM, kTileK);
  auto [b0, b1] = rhsTransposed ? copyThreads(kTileN, kTileK)
                                : copyThreads(kTileK, kTileN);
  std::string text = R"mlir(
module attributes {transform.with_named_sequence} {
  transform.named_sequence @__transform_main(
      %root: !transform.any_op {transform.readonly},
      %mm: !transform.any_op {transform.consumed}) {
    %t1, %blocks = transform.structured.tile_using_forall %mm
        tile_sizes [$TILE_M, $TILE_N] (mapping = [#gpu.block<y>, #gpu.block<x>])
        : (!transform.any_op) -> (!transform.any_op, !transform.any_op)
    %t2, %kloop = transform.structured.tile_using_for %t1 tile_sizes [0, 0, $TILE_K]
        : (!transform.any_op) -> (!transform.any_op, !transform.any_op)
    %p = transform.structured.promote %t2 { operands_to_promote = [0, 1],
        memory_space = #gpu.address_space<workgroup> }
        : (!transform.any_op) -> !transform.any_op
    transform.apply_patterns to %blocks {
      transform.apply_patterns.canonicalization
    } : !transform.any_op
    transform.apply_cse to %blocks : !transform.any_op
    %t3, %warps = transform.structured.tile_using_forall %p
        tile_sizes [$WARP_TILE, $WARP_TILE]
        (mapping = [#gpu.warp<linear_dim_1>, #gpu.warp<linear_dim_0>])
        : (!transform.any_op) -> (!transform.any_op, !transform.any_op)
    %copies = transform.structured.match ops{["linalg.copy"]} in %blocks
        : (!transform.any_op) -> !transform.any_op
    %ca, %cb = transform.split_handle %copies
        : (!transform.any_op) -> (!transform.any_op, !transform.any_op)
    %ta, %fa = transform.structured.tile_using_forall %ca num_threads [$A0, $A1]
        (mapping = [#gpu.thread<linear_dim_1>, #gpu.thread<linear_dim_0>])
        : (!transform.any_op) -> (!transform.any_op, !transform.any_op)
    %tb, %fb = transform.structured.tile_using_forall %cb num_threads [$B0, $B1]
        (mapping = [#gpu.thread<linear_dim_1>, #gpu.thread<linear_dim_0>])
        : (!transform.any_op) -> (!transform.any_op, !transform.any_op)
    transform.structured.vectorize %ta : !transform.any_op
    transform.structured.vectorize %tb : !transform.any_op
    transform.apply_patterns to %blocks {
      transform.apply_patterns.vector.transfer_to_scf max_transfer_rank = 1 full_unroll = true
    } : !transform.any_op
    transform.structured.vectorize %t3 : !transform.any_op
    transform.apply_patterns to %blocks {
      transform.apply_patterns.vector.transfer_permutation_patterns
      transform.apply_patterns.vector.reduction_to_contract
      transform.apply_patterns.vector.fold_arith_extension
      transform.apply_patterns.canonicalization
    } : !transform.any_op
    transform.apply_patterns to %blocks {
      transform.apply_patterns.gpu.unroll_vectors_subgroup_mma [16, 8, 16]
    } : !transform.any_op
    %launch = transform.gpu.map_forall_to_blocks %blocks generate_gpu_launch
        : (!transform.any_op) -> !transform.any_op
    %mapped = transform.gpu.map_nested_forall_to_threads %launch
        block_dims = [$THREADS, 1, 1] : (!transform.any_op) -> !transform.any_op
    transform.annotate %mapped "$LAUNCH_ATTR" : !transform.any_op
    transform.apply_patterns to %mapped {
      transform.apply_patterns.memref.fold_memref_alias_ops
      transform.apply_patterns.canonicalization
    } : !transform.any_op
    transform.apply_cse to %mapped : !transform.any_op
    %func = transform.get_parent_op %mapped {op_name = "func.func"}
        : (!transform.any_op) -> !transform.any_op
    %hoisted = transform.structured.hoist_redundant_vector_transfers %func
        : (!transform.any_op) -> !transform.any_op
    %async = transform.nvgpu.create_async_groups %hoisted {bypass_l1}
        : (!transform.any_op) -> !transform.any_op
    transform.yield
  }
}
)mlir";
  const std::pair<llvm::StringRef, std::string> values[] = {
      {"$TILE_M", std::to_string(kTileM)},
      {"$TILE_N", std::to_string(kTileN)},
      {"$TILE_K", std::to_string(kTileK)},
      {"$WARP_TILE", std::to_string(kWarpTile)},
      {"$A0", std::to_string(a0)},
      {"$A1", std::to_string(a1)},
      {"$B0", std::to_string(b0)},
      {"$B1", std::to_string(b1)},
      {"$THREADS", std::to_string(kThreads)},
      {"$LAUNCH_ATTR", kMmaLaunchAttr.str()}};
  for (const auto &[key, value] : values)
    for (size_t at; (at = text.find(key.str())) != std::string::npos;)
      text.replace(at, key.size(), value);
  return text;
}

/// The K loop of a launch that the schedule left as: the A tile's
/// cp.async copies and their group, a wait, a barrier; the same for B;
/// the products from shared memory; a barrier (once the kernel is
/// `complete`: the conversion to mma.sync adds it). Null if it is not so.
struct CopyLoop {
  scf::ForOp loop;
  SmallVector<nvgpu::DeviceAsyncCopyOp> copies;
  SmallVector<nvgpu::DeviceAsyncCreateGroupOp> groups;
  SmallVector<nvgpu::DeviceAsyncWaitOp> waits;
  /// The size of each shared buffer the copies fill.
  int64_t bufferBytes = 0;
};

std::optional<CopyLoop> findCopyLoop(gpu::LaunchOp launch, bool complete) {
  CopyLoop c;
  launch.getBody().walk([&](scf::ForOp f) {
    if (!f.getOps<nvgpu::DeviceAsyncCopyOp>().empty())
      c.loop = f;
  });
  if (!c.loop)
    return std::nullopt;
  Block *body = c.loop.getBody();
  for (Operation &op : *body) {
    if (auto copy = dyn_cast<nvgpu::DeviceAsyncCopyOp>(op))
      c.copies.push_back(copy);
    else if (auto group = dyn_cast<nvgpu::DeviceAsyncCreateGroupOp>(op))
      c.groups.push_back(group);
    else if (auto wait = dyn_cast<nvgpu::DeviceAsyncWaitOp>(op))
      c.waits.push_back(wait);
  }
  auto barrierAfter = [](Operation *op) {
    return isa_and_nonnull<gpu::BarrierOp>(op->getNextNode());
  };
  Operation *beforeYield = body->getTerminator()->getPrevNode();
  if (c.groups.size() != 2 || c.waits.size() != 2 ||
      !barrierAfter(c.waits[0]) || !barrierAfter(c.waits[1]) ||
      (complete && !isa_and_nonnull<gpu::BarrierOp>(beforeYield)) ||
      c.copies.front()->getBlock() != body ||
      !c.waits[1]->isBeforeInBlock(beforeYield))
    return std::nullopt;
  // Every copy comes before the second wait; their destinations are views
  // at offset 0 of workgroup buffers of one size.
  std::optional<int64_t> bytes;
  for (nvgpu::DeviceAsyncCopyOp copy : c.copies) {
    auto view = copy.getDst().getDefiningOp<memref::ViewOp>();
    if (!view || view->getBlock() != body ||
        getConstantIntValue(view.getByteShift()) != 0 ||
        copy.getSrcElements() || !copy->isBeforeInBlock(c.waits[1]))
      return std::nullopt;
    auto source = cast<MemRefType>(view.getSource().getType());
    if (source.getRank() != 1 || !source.hasStaticShape() ||
        (bytes && *bytes != source.getDimSize(0)))
      return std::nullopt;
    bytes = source.getDimSize(0);
  }
  c.bufferBytes = *bytes;
  return c;
}

/// Software-pipelines the K loop in two stages: each iteration issues the
/// copies of the next K tile into the other half of the (doubled) shared
/// buffers, then waits for its own tile, which the previous iteration (or
/// the prologue) issued. A and B copies form one group, so one wait and one
/// barrier precede the products, instead of a wait and a barrier per
/// operand. The last iteration's copies read nothing (a source size of 0).
void pipelineCopies(CopyLoop &c) {
  int64_t stageBytes = c.bufferBytes / 2;
  scf::ForOp loop = c.loop;
  Location loc = loop.getLoc();
  Value iv = loop.getInductionVar();
  Block *body = loop.getBody();
  Type token = nvgpu::DeviceAsyncTokenType::get(loop.getContext());

  // One wait and one barrier: the first operand's go, and one group holds
  // every copy.
  c.waits[0]->getNextNode()->erase();
  c.waits[0]->erase();
  c.groups[0]->erase();

  // `v` recomputed at `b`'s point with `iv` replaced as `map` says: the
  // ops of the loop body it is computed from are cloned (the prologue,
  // before the loop, needs them all).
  std::function<Value(Value, IRMapping &, OpBuilder &)> remap =
      [&](Value v, IRMapping &map, OpBuilder &b) -> Value {
    if (Value m = map.lookupOrNull(v))
      return m;
    Operation *def = v.getDefiningOp();
    if (!def || def->getBlock() != body)
      return v;
    for (Value operand : def->getOperands())
      remap(operand, map, b);
    Operation *clone = b.clone(*def, map);
    return clone->getResult(cast<OpResult>(v).getResultNumber());
  };
  auto viewAt = [&](OpBuilder &b, memref::ViewOp view, Value shift) {
    return memref::ViewOp::create(b, view.getLoc(), view.getType(),
                                  view.getSource(), shift, ValueRange{});
  };
  auto issue = [&](OpBuilder &b, Value k, Value shift, Value srcElements) {
    IRMapping map;
    map.map(iv, k);
    SmallVector<Value> tokens;
    for (nvgpu::DeviceAsyncCopyOp copy : c.copies) {
      auto view = copy.getDst().getDefiningOp<memref::ViewOp>();
      SmallVector<Value> dstIdx, srcIdx;
      for (Value i : copy.getDstIndices())
        dstIdx.push_back(remap(i, map, b));
      for (Value i : copy.getSrcIndices())
        srcIdx.push_back(remap(i, map, b));
      tokens.push_back(nvgpu::DeviceAsyncCopyOp::create(
          b, copy.getLoc(), token, viewAt(b, view, shift), dstIdx,
          remap(copy.getSrc(), map, b), srcIdx, copy.getDstElementsAttr(),
          srcElements, copy.getBypassL1Attr()));
    }
    return nvgpu::DeviceAsyncCreateGroupOp::create(b, loc, token, tokens);
  };

  // Prologue: the first tile into stage 0.
  OpBuilder b(loop);
  Value zero = arith::ConstantIndexOp::create(b, loc, 0);
  Value first = issue(b, loop.getLowerBound(), zero, Value());

  // In the loop: stage = ((k - lb) / step) % 2.
  b.setInsertionPointToStart(body);
  Value bytes = arith::ConstantIndexOp::create(b, loc, stageBytes);
  Value one = arith::ConstantIndexOp::create(b, loc, 1);
  Value iter = arith::DivUIOp::create(
      b, loc, arith::SubIOp::create(b, loc, iv, loop.getLowerBound()),
      loop.getStep());
  Value parity = arith::AndIOp::create(b, loc, iter, one);
  Value cur = arith::MulIOp::create(b, loc, parity, bytes);
  Value next = arith::SubIOp::create(b, loc, bytes, cur);
  Value k = arith::AddIOp::create(b, loc, iv, loop.getStep());
  Value more = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::slt, k,
                                     loop.getUpperBound());
  int64_t elements = c.copies.front().getDstElements().getZExtValue();
  Value srcElements = arith::SelectOp::create(
      b, loc, more, arith::ConstantIndexOp::create(b, loc, elements), zero);
  // The prefetch goes right before the wait, after the index computations
  // it may share with the old copies.
  b.setInsertionPoint(c.waits[1]);
  Value group = issue(b, k, next, srcElements);
  c.waits[1].getAsyncDependenciesMutable().assign(group);
  c.waits[1].setNumGroupsAttr(b.getI32IntegerAttr(1));

  // The products read the current stage.
  llvm::SetVector<memref::ViewOp> views;
  for (nvgpu::DeviceAsyncCopyOp copy : c.copies)
    views.insert(copy.getDst().getDefiningOp<memref::ViewOp>());
  c.groups[1]->erase();
  for (nvgpu::DeviceAsyncCopyOp copy : c.copies)
    copy.erase();
  for (memref::ViewOp view : views) {
    b.setInsertionPointAfter(view);
    view.getByteShiftMutable().assign(cur);
  }

  // Drain: no copy is left in flight when the kernel ends.
  b.setInsertionPointAfter(loop);
  nvgpu::DeviceAsyncWaitOp::create(b, loc, first, b.getI32IntegerAttr(0));
}

/// Moves the launch's workgroup-memory allocations into workgroup
/// attributions (static shared memory), `factor` times as large; nothing
/// upstream does this for a gpu.launch.
void allocsToAttributions(gpu::LaunchOp launch, int64_t factor) {
  SmallVector<memref::AllocOp> allocs;
  launch.getBody().walk([&](memref::AllocOp alloc) {
    if (auto space = dyn_cast_or_null<gpu::AddressSpaceAttr>(
            alloc.getType().getMemorySpace()))
      if (space.getValue() == gpu::AddressSpace::Workgroup)
        allocs.push_back(alloc);
  });
  for (memref::AllocOp alloc : allocs) {
    MemRefType type = alloc.getType();
    if (factor != 1) {
      SmallVector<int64_t> shape(type.getShape());
      shape[0] *= factor;
      type = MemRefType::get(shape, type.getElementType(), MemRefLayoutAttrInterface(),
                             type.getMemorySpace());
    }
    BlockArgument shared = launch.addWorkgroupAttribution(type, alloc.getLoc());
    for (Operation *user : llvm::make_early_inc_range(alloc->getUsers()))
      if (isa<memref::DeallocOp>(user))
        user->erase();
    alloc.replaceAllUsesWith(shared);
    alloc.erase();
  }
}

} // namespace

LogicalResult retypeMmaToBF16(gpu::LaunchOp launch) {
  SmallVector<nvgpu::MmaSyncOp> mmas;
  launch.getBody().walk([&](nvgpu::MmaSyncOp op) { mmas.push_back(op); });
  for (nvgpu::MmaSyncOp op : mmas) {
    if (op.getMmaShapeAsArray() != std::array<int64_t, 3>{16, 8, 16})
      return op.emitOpError("bf16 retyping expects m16n8k16");
    OpBuilder b(op);
    Location loc = op.getLoc();
    Type i32 = b.getI32Type(), f32 = b.getF32Type();
    auto registers = [&](Value frag) {
      // vector<Rx2xf16> -> R x i32.
      SmallVector<Value> regs;
      auto t = cast<VectorType>(frag.getType());
      for (int64_t i = 0; i < t.getDimSize(0); ++i) {
        Value row = vector::ExtractOp::create(b, loc, frag, i);
        Value asInt = vector::BitCastOp::create(
            b, loc, VectorType::get({1}, i32), row);
        regs.push_back(vector::ExtractOp::create(b, loc, asInt, 0));
      }
      return regs;
    };
    SmallVector<Value> a = registers(op.getMatrixA());
    SmallVector<Value> bm = registers(op.getMatrixB());
    SmallVector<Value> c;
    auto cType = cast<VectorType>(op.getMatrixC().getType());
    for (int64_t i = 0; i < cType.getDimSize(0); ++i)
      for (int64_t j = 0; j < cType.getDimSize(1); ++j)
        c.push_back(vector::ExtractOp::create(b, loc, op.getMatrixC(),
                                              ArrayRef<int64_t>{i, j}));
    auto resultType = LLVM::LLVMStructType::getLiteral(
        b.getContext(), SmallVector<Type>(c.size(), f32));
    Value d = NVVM::MmaOp::create(
        b, loc, resultType, a, bm, c, ArrayRef<int64_t>{16, 8, 16},
        /*b1Op=*/std::nullopt, /*intOverflow=*/std::nullopt,
        std::array<NVVM::MMATypes, 2>{NVVM::MMATypes::bf16,
                                      NVVM::MMATypes::bf16},
        std::array<NVVM::MMALayout, 2>{NVVM::MMALayout::row,
                                       NVVM::MMALayout::col});
    SmallVector<Value> elems;
    for (int64_t i = 0; i < static_cast<int64_t>(c.size()); ++i)
      elems.push_back(LLVM::ExtractValueOp::create(b, loc, d, i));
    Value result = vector::FromElementsOp::create(b, loc, cType, elems);
    op.getResult().replaceAllUsesWith(result);
    op.erase();
  }
  return success();
}

namespace {

/// Drops the f16 -> bf16 bitcasts of a bf16 contraction's body, so that it
/// reads as an f16 contraction: MLIR 22's vector-to-nvgpu conversion only
/// handles f16. retypeMmaToBF16 restores the meaning on the mma.sync
/// instructions, the only place where the type of the bits matters (the
/// copies and ldmatrix move 16-bit values untouched).
void punAsF16(linalg::GenericOp g) {
  SmallVector<arith::BitcastOp> casts;
  g.getRegion().walk([&](arith::BitcastOp c) { casts.push_back(c); });
  for (arith::BitcastOp c : casts) {
    for (Operation *user : llvm::make_early_inc_range(c->getUsers())) {
      auto ext = cast<arith::ExtFOp>(user);
      OpBuilder b(ext);
      ext.replaceAllUsesWith(
          arith::ExtFOp::create(b, ext.getLoc(), ext.getType(), c.getIn())
              .getResult());
      ext.erase();
    }
    c.erase();
  }
}

/// Points every later use of `g`'s output buffer at a placeholder while the
/// schedule runs, and back afterwards. The schedule's transfer hoisting
/// keeps the accumulators in memory when the buffer has any other use (a
/// reshape of the result, say), which costs a load and a store of every
/// accumulator per K step.
class HiddenUses {
public:
  explicit HiddenUses(linalg::GenericOp g) : out(g.getDpsInits()[0]) {
    Block *block = g->getBlock();
    SmallVector<OpOperand *> uses;
    for (OpOperand &use : out.getUses()) {
      Operation *user = block->findAncestorOpInBlock(*use.getOwner());
      if (user == g)
        continue;
      if (!user || !g->isBeforeInBlock(user))
        return; // used before the kernel: leave everything as it is
      uses.push_back(&use);
    }
    if (uses.empty() || !isa<MemRefType>(out.getType()))
      return;
    OpBuilder b(g);
    placeholder = memref::AllocOp::create(b, g.getLoc(),
                                          cast<MemRefType>(out.getType()));
    for (OpOperand *use : uses)
      use->set(placeholder);
  }
  ~HiddenUses() {
    if (!placeholder)
      return;
    placeholder.getResult().replaceAllUsesWith(out);
    placeholder.erase();
  }

private:
  Value out;
  memref::AllocOp placeholder;
};

/// The linalg.fill of zeros into `g`'s accumulator just before `g`, which
/// the selection pass creates, or null.
linalg::FillOp zeroFillBefore(linalg::GenericOp g) {
  auto fill = dyn_cast_or_null<linalg::FillOp>(g->getPrevNode());
  if (!fill || fill.getOutputs()[0] != g.getDpsInits()[0] ||
      !isZero(fill.getInputs()[0]))
    return {};
  return fill;
}

/// Starts the accumulators of `launch` at zero instead of reading them
/// from `out`. Only reads before the K loop may be replaced; returns false,
/// changing nothing, if a read of `out` sits inside a loop.
bool zeroAccumulators(gpu::LaunchOp launch, Value out) {
  SmallVector<vector::TransferReadOp> reads;
  bool inLoop = false;
  launch.getBody().walk([&](vector::TransferReadOp read) {
    if (read.getBase() != out)
      return;
    auto loop = read->getParentOfType<scf::ForOp>();
    inLoop |= loop && launch->isProperAncestor(loop);
    reads.push_back(read);
  });
  if (inLoop)
    return false;
  for (vector::TransferReadOp read : reads) {
    OpBuilder b(read);
    auto type = cast<VectorType>(read.getType());
    read.replaceAllUsesWith(
        arith::ConstantOp::create(
            b, read.getLoc(), type,
            DenseElementsAttr::get(type, b.getZeroAttr(type.getElementType())))
            .getResult());
    read.erase();
  }
  return true;
}

/// Gives a contraction that reads A as K x M (M-major, which only the
/// wgmma kernel takes) an M x K copy of it to read instead.
void copyLhsKMajor(linalg::GenericOp g) {
  MLIRContext *ctx = g.getContext();
  AffineMap lhsMap = g.getIndexingMapsArray()[0];
  if (lhsMap.getResult(0) != getAffineDimExpr(2, ctx))
    return;
  // Before the accumulator's zero fill, which must stay next to g.
  OpBuilder b(g);
  if (linalg::FillOp fill = zeroFillBefore(g))
    b.setInsertionPoint(fill);
  Location loc = g.getLoc();
  Value a = g.getDpsInputs()[0];
  auto t = cast<MemRefType>(a.getType());
  Value copy = memref::AllocOp::create(
      b, loc,
      MemRefType::get({t.getDimSize(1), t.getDimSize(0)}, t.getElementType()));
  linalg::TransposeOp::create(b, loc, a, copy, ArrayRef<int64_t>{1, 0});
  g.getDpsInputOperand(0)->set(copy);
  SmallVector<AffineMap> maps = g.getIndexingMapsArray();
  maps[0] = AffineMap::get(3, 0,
                           {getAffineDimExpr(0, ctx), getAffineDimExpr(2, ctx)},
                           ctx);
  g.setIndexingMapsAttr(b.getAffineMapArrayAttr(maps));
  b.setInsertionPointAfter(g);
  memref::DeallocOp::create(b, loc, copy);
}

struct GPUTensorCoreMatmulsPass
    : impl::GPUTensorCoreMatmulsBase<GPUTensorCoreMatmulsPass> {
  using Base::Base;
  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    SmallVector<linalg::GenericOp> marked;
    getOperation().walk([&](linalg::GenericOp g) {
      if (g->hasAttr(kMmaAttr))
        marked.push_back(g);
    });
    // sm_90a: the element-wise consumers that can run in the kernels'
    // epilogues, all found before any kernel is built (the analysis reads
    // linalg ops, not kernels).
    // A consumer that reads two matmuls' results goes to the first; the
    // second stores its result, which the first's epilogue then loads.
    SmallVector<std::optional<ConsumerEpilogue>> epilogues;
    llvm::SmallPtrSet<Operation *, 8> taken;
    if (wgmma)
      for (linalg::GenericOp g : marked) {
        // The consumer takes in what reads its output in turn (the GELU
        // after the fc matmul's bias), so the epilogue computes both. A
        // consumer an earlier matmul took is left as it is.
        std::optional<ConsumerEpilogue> epilogue =
            ConsumerEpilogue::findAbsorbing(
                g, g.getDpsInits()[0], g.getDpsInputs(),
                ConsumerEpilogue::Place::Consumer,
                [&](Operation *consumer) { return taken.contains(consumer); });
        if (epilogue && !taken.insert(epilogue->consumerOp()).second)
          epilogue.reset();
        epilogues.push_back(std::move(epilogue));
      }
    PaddedCopies padded;
    for (auto [i, g] : llvm::enumerate(marked)) {
      auto format = g->getAttrOfType<StringAttr>(kMmaAttr).getValue().str();
      // sm_90a: the warpgroup-MMA kernel writes all of C (or its consumer's
      // outputs), so the zero fill before it goes.
      if (wgmma) {
        linalg::FillOp fill = zeroFillBefore(g);
        Value c = g.getDpsInits()[0];
        WgmmaOptions options;
        options.tileN = wgmmaTileN;
        options.stages = wgmmaStages;
        options.tma = wgmmaTma;
        options.persistent = wgmmaPersistent;
        options.splitK = wgmmaSplitK;
        options.multiprocessors = wgmmaMultiprocessors;
        options.groupRows = wgmmaGroupRows;
        if (fill && succeeded(buildWgmmaMatmul(
                        g, format == "bf16", options,
                        epilogues[i] ? &*epilogues[i] : nullptr, &padded))) {
          fill.erase();
          ConsumerEpilogue::eraseIfUnused(c);
          continue;
        }
      }
      AffineMap rhsMap = g.getIndexingMapsArray()[1];
      bool rhsTransposed = rhsMap.getResult(0) == getAffineDimExpr(1, ctx);
      auto cType = cast<MemRefType>(g.getDpsInits()[0].getType());
      int64_t k = cast<MemRefType>(g.getDpsInputs()[1].getType())
                      .getDimSize(rhsTransposed ? 1 : 0);
      if (!tiles(cType.getDimSize(0), cType.getDimSize(1), k)) {
        g.emitError("internal error: a tensor-core matmul of ")
            << cType.getDimSize(0) << " x " << cType.getDimSize(1) << " x "
            << k << " has partial tiles, which only the wgmma kernel takes";
        return signalPassFailure();
      }
      copyLhsKMajor(g);
      if (format == "bf16")
        punAsF16(g);
      auto func = g->getParentOfType<func::FuncOp>();
      // The zero fill of the accumulator goes first: a use of the output
      // before the kernel would keep the accumulators from being hoisted
      // out of the K loop. The kernel then starts them at zero (one pass
      // over the output less), or the fill comes back.
      Value zero, filled;
      if (linalg::FillOp fill = zeroFillBefore(g)) {
        zero = fill.getInputs()[0];
        filled = fill.getOutputs()[0];
        fill.erase();
      }
      HiddenUses hidden(g);
      OwningOpRef<ModuleOp> script =
          parseSourceString<ModuleOp>(scheduleFor(rhsTransposed), ctx);
      if (!script) {
        g.emitError("internal error: the tensor-core schedule does not parse");
        return signalPassFailure();
      }
      auto entry = script->lookupSymbol<transform::TransformOpInterface>(
          "__transform_main");
      transform::TransformOptions options;
      RaggedArray<transform::MappedValue> extra;
      extra.push_back(ArrayRef<transform::MappedValue>{g.getOperation()});
      if (failed(transform::applyTransforms(func, entry, extra, options,
                                            /*enforceToplevelTransformOp=*/
                                            false)))
        return signalPassFailure();

      SmallVector<gpu::LaunchOp> launches;
      func.walk([&](gpu::LaunchOp l) {
        if (l->hasAttr(kMmaLaunchAttr))
          launches.push_back(l);
      });
      for (gpu::LaunchOp launch : launches) {
        launch->removeAttr(kMmaLaunchAttr);
        std::optional<CopyLoop> copyLoop = findCopyLoop(launch, false);
        allocsToAttributions(launch, copyLoop ? 2 : 1);
        if (filled && !zeroAccumulators(launch, filled)) {
          OpBuilder b(launch);
          linalg::FillOp::create(b, launch.getLoc(), zero, filled);
        }
        filled = {};
        RewritePatternSet prepare(ctx);
        populatePrepareVectorToMMAPatterns(prepare, /*useNvGpu=*/true);
        if (failed(applyPatternsGreedily(launch, std::move(prepare))))
          return signalPassFailure();
        IRRewriter rewriter(ctx);
        if (failed(convertVectorToNVVMCompatibleMMASync(rewriter, launch)))
          return signalPassFailure();
        if (format == "bf16" && failed(retypeMmaToBF16(launch)))
          return signalPassFailure();
        // The conversions above may have rebuilt ops: look again.
        if (copyLoop && (copyLoop = findCopyLoop(launch, true)))
          pipelineCopies(*copyLoop);
      }
    }
    // Attention kernels (convert-nn-to-linalg{mma-attention}) and a warp
    // per row (convert-nn-to-linalg{row-kernels warp-rows}).
    // Collected first: the expansions erase the consumers they absorb.
    SmallVector<gpu::LaunchOp> standIns;
    getOperation().walk([&](gpu::LaunchOp launch) { standIns.push_back(launch); });
    for (gpu::LaunchOp launch : standIns)
      if (failed(expandMmaAttention(launch)) || failed(expandWarpRows(launch)))
        return signalPassFailure();
  }
};

} // namespace
} // namespace tessera
