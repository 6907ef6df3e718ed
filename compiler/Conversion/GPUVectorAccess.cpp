//===- GPUVectorAccess.cpp - Aligned vector loads in kernels --------------===//
//
// vector.load/store lower to LLVM loads with the element's alignment (4
// bytes for f32), and NVPTX then splits a 64-element row into 64 scalar
// loads. The alignment an access really has follows from the memref type
// when its layout is static: the address is base + size * (offset +
// sum_d index_d * stride_d), and only the non-constant indices are unknown.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/Passes.h"

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

/// The largest power of two up to 16 that divides every access's byte
/// address, or 0 when nothing better than the element's alignment is known.
uint64_t provenAlignment(Value buffer, ValueRange indices,
                         bool alignedArguments) {
  auto type = cast<MemRefType>(buffer.getType());
  if (!hasAlignedBase(buffer, alignedArguments) || !type.getElementType().isIntOrFloat())
    return 0;
  auto [strides, offset] = type.getStridesAndOffset();
  if (ShapedType::isDynamic(offset))
    return 0;
  uint64_t g = uint64_t(offset);
  for (auto [index, stride] : llvm::zip_equal(indices, strides)) {
    if (ShapedType::isDynamic(stride))
      return 0;
    std::optional<int64_t> c = getConstantIntValue(index);
    g = std::gcd(g, uint64_t(c ? *c * stride : stride));
  }
  uint64_t bytes = type.getElementTypeBitWidth() / 8;
  uint64_t align = 16;
  if (g != 0)
    while (align > bytes && (g * bytes) % align != 0)
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
