//===- Passes.td - Transformations of the nn dialect --------*- tablegen -*-===//

#ifndef TESSERA_NN_TRANSFORMS_PASSES
#define TESSERA_NN_TRANSFORMS_PASSES

include "mlir/Pass/PassBase.td"

def Autodiff : Pass<"tessera-autodiff", "mlir::ModuleOp"> {
  let summary = "Reverse-mode differentiation of a loss function";
  let description = [{
    Clones `function` (a function returning a scalar `tensor<f32>` loss) as
    `output` and appends its backward pass: each `nn` op's vector-Jacobian
    product (DifferentiableOpInterface), last op first, accumulating
    gradients of values used more than once. `output` returns the loss, then
    the gradient of every argument tagged `tessera.param`, in argument
    order; results carry `tessera.output = "loss"` / `"grad.PATH"`. Only
    values that depend on a parameter are differentiated. An op on that path
    without a gradient is an error at its (.tsr) location.
  }];
  let options = [
    Option<"function", "function", "std::string", /*default=*/"\"loss\"",
           "The loss function to differentiate">,
    Option<"output", "output", "std::string", /*default=*/"\"train_step\"",
           "Name of the generated function">,
    Option<"scaleLoss", "scale-loss", "bool", /*default=*/"false",
           "Dynamic loss scaling: the generated function takes a scalar "
           "input `loss_scale` (after the other inputs) and seeds the "
           "backward pass with it, so the gradients come out scaled">
  ];
  let dependentDialects = ["::tessera::nn::NNDialect",
                           "mlir::arith::ArithDialect",
                           "mlir::func::FuncDialect"];
}

#endif // TESSERA_NN_TRANSFORMS_PASSES
