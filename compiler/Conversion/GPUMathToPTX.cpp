//===- GPUMathToPTX.cpp - f32/f64 math in kernels as PTX instructions -----===//

#include "compiler/Conversion/Passes.h"

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
    bool f64 = op.getType().isF64();
    if (!op.getType().isF32() && !f64)
      return failure();
    std::string text = instruction;
    for (size_t at; (at = text.find("{t}")) != std::string::npos;)
      text.replace(at, 3, f64 ? "f64" : "f32");
    auto asmOp = LLVM::InlineAsmOp::create(
        b, op.getLoc(), op.getType(), op->getOperands(), text + " $0, $1;",
        f64 ? "=d,d" : "=f,f",
        /*has_side_effects=*/false, /*is_align_stack=*/false,
        LLVM::tailcallkind::TailCallKind::None, LLVM::AsmDialectAttr(),
        ArrayAttr());
    b.replaceOp(op, asmOp.getResult(0));
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
