//===- NNInterfaces.td - Interfaces of the nn dialect -------*- tablegen -*-===//

#ifndef TESSERA_NN_INTERFACES
#define TESSERA_NN_INTERFACES

include "mlir/IR/OpBase.td"

def NN_DifferentiableOpInterface : OpInterface<"DifferentiableOpInterface"> {
  let cppNamespace = "::tessera::nn";
  let description = [{
    An op that knows its vector-Jacobian product: given the gradient of the
    loss with respect to each result, it builds (with other `nn` ops, at the
    builder's insertion point) the gradient with respect to each operand.
    Reverse-mode autodiff (`tessera-autodiff`) calls it on every op of the
    forward computation, last op first.
  }];
  let methods = [
    InterfaceMethod<[{
        Appends one gradient per operand to `operandGrads`, or a null value
        for an operand that takes no gradient (integer indices, targets).
        `resultGrads` has one non-null gradient per result.
      }],
      "::mlir::LogicalResult", "buildVJP",
      (ins "::mlir::OpBuilder &":$builder,
           "::mlir::ArrayRef<::mlir::Value>":$resultGrads,
           "::llvm::SmallVectorImpl<::mlir::Value> &":$operandGrads)>
  ];
}

#endif // TESSERA_NN_INTERFACES
