//===- ApproximateMath.cpp - Polynomial approximations of f32 math --------===//

#include "compiler/Conversion/Passes.h"

#include "mlir/Dialect/Math/Transforms/Approximation.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace tessera {
#define GEN_PASS_DEF_APPROXIMATEMATH
#include "compiler/Conversion/Passes.h.inc"

namespace {
struct ApproximateMathPass
    : public impl::ApproximateMathBase<ApproximateMathPass> {
  void runOnOperation() override {
    mlir::RewritePatternSet patterns(&getContext());
    mlir::populateMathPolynomialApproximationPatterns(
        patterns, [](llvm::StringRef name) {
          return llvm::is_contained({"math.tanh", "math.exp", "math.expm1",
                                     "math.log", "math.log1p", "math.erf"},
                                    name);
        });
    if (failed(mlir::applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
} // namespace tessera
