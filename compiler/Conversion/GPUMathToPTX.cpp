//===- GPUMathToPTX.cpp - f32/f64 math in kernels as PTX instructions -----===//

#include "compiler/Conversion/Passes.h"

#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

using namespace mlir;

namespace tessera {
#define GEN_PASS_DEF_GPUMATHTOPTX
#include "compiler/Conversion/Passes.h.inc"

namespace {
/// One f32 -> f32 or f64 -> f64 math op as one PTX instruction;
/// `instruction` names the type as {t}.
template <typename OpT>
struct UnaryToPTX : OpRewritePattern<OpT> {
  UnaryToPTX(MLIRContext *ctx, const char *instruction)
      : OpRewritePattern<OpT>(ctx), instruction(instruction) {}
  const char *instruction;
  LogicalResult matchAndRewrite(OpT op, PatternRewriter &b) const override {
    // 1-D vectors (the row kernels' chunks) lane by lane.
    auto vt = dyn_cast<VectorType>(op.getType());
    Type et = vt ? vt.getElementType() : op.getType();
    bool f64 = et.isF64();
    if ((!et.isF32() && !f64) || (vt && (vt.getRank() != 1 || vt.isScalable())))
      return failure();
    std::string text = instruction;
    for (size_t at; (at = text.find("{t}")) != std::string::npos;)
      text.replace(at, 3, f64 ? "f64" : "f32");
    auto emit = [&](Value x) -> Value {
      return LLVM::InlineAsmOp::create(
                 b, op.getLoc(), et, ValueRange{x}, text + " $0, $1;",
                 f64 ? "=d,d" : "=f,f",
                 /*has_side_effects=*/false, /*is_align_stack=*/false,
                 LLVM::tailcallkind::TailCallKind::None, LLVM::AsmDialectAttr(),
                 ArrayAttr())
          .getResult(0);
    };
    Value x = op->getOperand(0);
    if (!vt) {
      b.replaceOp(op, emit(x));
      return success();
    }
    SmallVector<Value> lanes;
    for (int64_t i = 0; i < vt.getNumElements(); ++i)
      lanes.push_back(
          emit(vector::ExtractOp::create(b, op.getLoc(), x, ArrayRef<int64_t>{i})));
    b.replaceOpWithNewOp<vector::FromElementsOp>(op, vt, lanes);
    return success();
  }
};

struct GPUMathToPTXPass : impl::GPUMathToPTXBase<GPUMathToPTXPass> {
  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    RewritePatternSet patterns(ctx);
    patterns.add<UnaryToPTX<math::SqrtOp>>(ctx, "sqrt.rn.{t}");
    patterns.add<UnaryToPTX<math::FloorOp>>(ctx, "cvt.rmi.{t}.{t}");
    patterns.add<UnaryToPTX<math::CeilOp>>(ctx, "cvt.rpi.{t}.{t}");
    patterns.add<UnaryToPTX<math::RoundEvenOp>>(ctx, "cvt.rni.{t}.{t}");
    patterns.add<UnaryToPTX<math::TruncOp>>(ctx, "cvt.rzi.{t}.{t}");
    patterns.add<UnaryToPTX<math::AbsFOp>>(ctx, "abs.{t}");
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
} // namespace tessera
