//===- GPUVectorAccess.cpp - Aligned vector loads in kernels --------------===//
//
// vector.load/store lower to LLVM loads with the element's alignment (4
// bytes for f32), and NVPTX then splits a 64-element row into 64 scalar
// loads. The alignment an access really has follows from the memref type
// when its layout is static: the address is base + size * (offset +
// sum_d index_d * stride_d); an index is often known to be a multiple of
// something (a loop stepping by 4), and a subview's offset adds to the
// indices of its source.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/Passes.h"

#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Dialect/Vector/Transforms/LoweringPatterns.h"
#include "mlir/Interfaces/ViewLikeInterface.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <numeric>

namespace tessera {
#define GEN_PASS_DEF_GPUVECTORACCESS
#include "compiler/Conversion/Passes.h.inc"
} // namespace tessera

using namespace mlir;

namespace {

/// Whether `buffer` is a view of an allocation or (with `alignedArguments`)
/// a function argument, in the default memory space: a base that is at
/// least 16-byte aligned.
bool hasAlignedBase(Value buffer, bool alignedArguments) {
  auto type = dyn_cast<MemRefType>(buffer.getType());
  if (!type || type.getMemorySpace())
    return false;
  while (Operation *def = buffer.getDefiningOp()) {
    if (isa<gpu::AllocOp, memref::AllocOp>(def))
      return true;
    auto view = dyn_cast<ViewLikeOpInterface>(def);
    if (!view)
      return false;
    buffer = view.getViewSource();
  }
  return alignedArguments &&
         isa<func::FuncOp>(buffer.getParentRegion()->getParentOp());
}

/// A number that `index` is known to be a multiple of (0: it is 0). Known
/// are constants, induction variables of scf.for loops with constant
/// steps (as the row kernels' chunk loops; their start counts too, such as
/// a lane times 4), and sums and products of those; anything else is a
/// multiple of 1.
uint64_t knownMultiple(Value index) {
  if (std::optional<int64_t> c = getConstantIntValue(index))
    return uint64_t(std::abs(*c));
  if (auto arg = dyn_cast<BlockArgument>(index)) {
    auto loop = dyn_cast<scf::ForOp>(arg.getOwner()->getParentOp());
    if (!loop || loop.getInductionVar() != arg)
      return 1;
    std::optional<int64_t> step = getConstantIntValue(loop.getStep());
    return step ? std::gcd(knownMultiple(loop.getLowerBound()),
                           uint64_t(std::abs(*step)))
                : 1;
  }
  Operation *def = index.getDefiningOp();
  if (auto add = dyn_cast_or_null<arith::AddIOp>(def))
    return std::gcd(knownMultiple(add.getLhs()), knownMultiple(add.getRhs()));
  if (auto mul = dyn_cast_or_null<arith::MulIOp>(def))
    return knownMultiple(mul.getLhs()) * knownMultiple(mul.getRhs());
  return 1;
}

/// A number that the element offset of every access to `buffer` at indices
/// that are multiples of `multiples` (as knownMultiple) is a multiple of,
/// from the buffer's origin: an allocation or (with `alignedArguments`) a
/// function argument. nullopt when unknown. Subviews with dynamic offsets
/// are followed to their source.
std::optional<uint64_t> offsetMultiple(Value buffer,
                                       SmallVector<uint64_t> multiples,
                                       bool alignedArguments) {
  auto type = cast<MemRefType>(buffer.getType());
  auto [strides, offset] = type.getStridesAndOffset();
  if (llvm::any_of(strides, ShapedType::isDynamic))
    return std::nullopt;
  if (!ShapedType::isDynamic(offset)) {
    if (!hasAlignedBase(buffer, alignedArguments))
      return std::nullopt;
    uint64_t g = uint64_t(offset);
    for (auto [m, stride] : llvm::zip_equal(multiples, strides))
      g = std::gcd(g, m * uint64_t(stride));
    return g;
  }
  // Source index d = offset_d + index_d * stride_d of the subview.
  auto sub = buffer.getDefiningOp<memref::SubViewOp>();
  if (!sub)
    return std::nullopt;
  llvm::SmallBitVector dropped = sub.getDroppedDims();
  SmallVector<uint64_t> source;
  unsigned next = 0;
  for (auto [d, off] : llvm::enumerate(sub.getMixedOffsets())) {
    uint64_t m = 0;
    if (!dropped.test(d)) {
      std::optional<int64_t> stride = getConstantIntValue(sub.getMixedStrides()[d]);
      if (!stride)
        return std::nullopt;
      m = multiples[next++] * uint64_t(std::abs(*stride));
    }
    uint64_t o = isa<Attribute>(off) ? uint64_t(std::abs(*getConstantIntValue(off)))
                                     : knownMultiple(cast<Value>(off));
    source.push_back(std::gcd(o, m));
  }
  return offsetMultiple(sub.getSource(), source, alignedArguments);
}

/// The largest power of two up to 16 that divides every access's byte
/// address, or 0 when nothing better than the element's alignment is known.
uint64_t provenAlignment(Value buffer, ValueRange indices,
                         bool alignedArguments) {
  auto type = cast<MemRefType>(buffer.getType());
  if (type.getMemorySpace() || !type.getElementType().isIntOrFloat())
    return 0;
  SmallVector<uint64_t> multiples;
  for (Value index : indices)
    multiples.push_back(knownMultiple(index));
  std::optional<uint64_t> g =
      offsetMultiple(buffer, multiples, alignedArguments);
  if (!g)
    return 0;
  uint64_t bytes = type.getElementTypeBitWidth() / 8;
  uint64_t align = 16;
  if (*g != 0)
    while (align > bytes && (*g * bytes) % align != 0)
      align /= 2;
  return align > bytes ? align : 0;
}

struct GPUVectorAccessPass
    : tessera::impl::GPUVectorAccessBase<GPUVectorAccessPass> {
  using Base::Base;
  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    RewritePatternSet patterns(ctx);
    vector::populateVectorTransferLoweringPatterns(patterns,
                                                   /*maxTransferRank=*/1);
    FrozenRewritePatternSet frozen(std::move(patterns));
    SmallVector<Operation *> transfers;
    getOperation().walk([&](gpu::LaunchOp launch) {
      launch.walk([&](Operation *op) {
        if (isa<vector::TransferReadOp, vector::TransferWriteOp>(op))
          transfers.push_back(op);
      });
    });
    if (transfers.empty())
      return;
    GreedyRewriteConfig config;
    config.setStrictness(GreedyRewriteStrictness::ExistingAndNewOps);
    (void)applyOpPatternsGreedily(transfers, frozen, config);

    Builder b(ctx);
    getOperation().walk([&](gpu::LaunchOp launch) {
      launch.walk([&](Operation *op) {
        if (auto load = dyn_cast<vector::LoadOp>(op)) {
          if (uint64_t a = provenAlignment(load.getBase(), load.getIndices(),
                                               alignedArguments);
              a && !load.getAlignment())
            load.setAlignmentAttr(b.getI64IntegerAttr(a));
        } else if (auto store = dyn_cast<vector::StoreOp>(op)) {
          if (uint64_t a = provenAlignment(store.getBase(), store.getIndices(),
                                               alignedArguments);
              a && !store.getAlignment())
            store.setAlignmentAttr(b.getI64IntegerAttr(a));
        }
      });
    });
  }
};

} // namespace
