//===- GPUMathToPTX.cpp - f32 math in kernels as PTX instructions ---------===//

#include "compiler/Conversion/Passes.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

using namespace mlir;

namespace tessera {
#define GEN_PASS_DEF_GPUMATHTOPTX
#include "compiler/Conversion/Passes.h.inc"

namespace {
/// One f32 -> f32 math op as one PTX instruction.
template <typename OpT>
struct UnaryToPTX : OpRewritePattern<OpT> {
  UnaryToPTX(MLIRContext *ctx, const char *instruction)
      : OpRewritePattern<OpT>(ctx), instruction(instruction) {}
  const char *instruction;
  LogicalResult matchAndRewrite(OpT op, PatternRewriter &b) const override {
    if (!op.getType().isF32())
      return failure();
    auto asmOp = LLVM::InlineAsmOp::create(
        b, op.getLoc(), op.getType(), op->getOperands(),
        std::string(instruction) + " $0, $1;", "=f,f",
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
    patterns.add<UnaryToPTX<math::SqrtOp>>(ctx, "sqrt.rn.f32");
    patterns.add<UnaryToPTX<math::FloorOp>>(ctx, "cvt.rmi.f32.f32");
    patterns.add<UnaryToPTX<math::CeilOp>>(ctx, "cvt.rpi.f32.f32");
    patterns.add<UnaryToPTX<math::RoundEvenOp>>(ctx, "cvt.rni.f32.f32");
    patterns.add<UnaryToPTX<math::TruncOp>>(ctx, "cvt.rzi.f32.f32");
    patterns.add<UnaryToPTX<math::AbsFOp>>(ctx, "abs.f32");
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
} // namespace tessera
