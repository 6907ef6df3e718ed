//===- Passes.td - Transformations of the precision dialect -*- tablegen -*-===//

#ifndef TESSERA_PRECISION_TRANSFORMS_PASSES
#define TESSERA_PRECISION_TRANSFORMS_PASSES

include "mlir/Pass/PassBase.td"

def MixedPrecision : Pass<"tessera-mixed-precision", "mlir::ModuleOp"> {
  let summary = "Applies a mixed-precision policy (bf16 or f16 compute, f32 master)";
  let description = [{
    As automatic mixed precision does: the inputs and results of the
    matrix products (`nn.linear`, `nn.matmul`, `nn.attention`) are rounded
    to `format`, products accumulate in f32, and every other op (norms,
    softmax, losses, element-wise) stays f32. Parameters stay f32 ("master
    weights"), and so do their gradients and the optimizer state, since
    only the uses of parameters are rounded. Runs on every public function
    except `optimizer_step`, before autodiff (the rounding's gradient is the
    rounded gradient).
  }];
  let options = [
    Option<"format", "format", "std::string", /*default=*/"\"bf16\"",
           "bf16 or f16">
  ];
  let dependentDialects = ["::tessera::precision::PrecisionDialect"];
}

#endif // TESSERA_PRECISION_TRANSFORMS_PASSES
