//===- MixedPrecision.cpp - bf16/f16 compute with f32 master weights ------===//

#include "dialects/precision/Transforms/Passes.h"

#include "mlir/IR/Builders.h"

using namespace mlir;

namespace tessera::precision {
#define GEN_PASS_DEF_MIXEDPRECISION
#include "dialects/precision/Transforms/Passes.h.inc"

namespace {
struct MixedPrecisionPass : impl::MixedPrecisionBase<MixedPrecisionPass> {
  using Base::Base;

  void runOnOperation() override {
    if (format != "bf16" && format != "f16") {
      getOperation().emitError("tessera-mixed-precision: format must be bf16 "
                               "or f16, got '" + format + "'");
      return signalPassFailure();
    }
    MLIRContext *ctx = &getContext();
    StringAttr fmt = StringAttr::get(ctx, format);
    auto isF32 = [](Value v) {
      auto t = dyn_cast<RankedTensorType>(v.getType());
      return t && t.getElementType().isF32();
    };
    for (auto fn : getOperation().getOps<func::FuncOp>()) {
      if (fn.isPrivate() || fn.getName() == "optimizer_step")
        continue;
      fn.walk([&](Operation *op) {
        if (!isa<nn::LinearOp, nn::MatmulOp, nn::AttentionOp>(op))
          return;
        OpBuilder b(op);
        for (OpOperand &use : op->getOpOperands()) {
          Value v = use.get();
          if (!isF32(v))
            continue;
          auto round = v.getDefiningOp<RoundOp>();
          if (round && round.getFormat() == format)
            continue;
          use.set(RoundOp::create(b, op->getLoc(), v, fmt));
        }
        b.setInsertionPointAfter(op);
        for (Value r : op->getResults()) {
          if (!isF32(r))
            continue;
          auto rounded = RoundOp::create(b, op->getLoc(), r, fmt);
          r.replaceAllUsesExcept(rounded, rounded);
        }
      });
    }
  }
};
} // namespace
} // namespace tessera::precision
