//===- PrecisionDialect.td - The precision dialect ----------*- tablegen -*-===//
//
// `precision` records where values change precision and why. Today it holds
// `round`: a value stored in a lower-precision format (bf16, f16) while the
// arithmetic around it stays f32 - how a mixed-precision policy with f32
// master weights and f32 accumulation behaves, expressed on f32 tensors.
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_PRECISION_DIALECT
#define TESSERA_PRECISION_DIALECT

include "mlir/IR/OpBase.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "dialects/nn/IR/NNInterfaces.td"

def Precision_Dialect : Dialect {
  let name = "precision";
  let cppNamespace = "::tessera::precision";
  let summary = "Where values change precision";
}

def Precision_RoundOp : Op<Precision_Dialect, "round",
    [Pure, SameOperandsAndResultType, Elementwise,
     DeclareOpInterfaceMethods<NN_DifferentiableOpInterface>]> {
  let summary = "rounds an f32 tensor to a lower-precision format";
  let description = [{
    Every element becomes the nearest value of `format` (bf16 or f16,
    round to nearest even), still held as f32: `extf(truncf(x))`. Its
    gradient is the incoming gradient rounded the same way, as a cast to
    the low-precision type and back does under automatic mixed precision.

    ```mlir
    %y = precision.round %x {format = "bf16"} : tensor<8x384xf32>
    ```
  }];
  let arguments = (ins RankedTensorOf<[F32]>:$input, StrAttr:$format);
  let results = (outs RankedTensorOf<[F32]>:$result);
  let assemblyFormat = "$input attr-dict `:` type($input)";
  let hasVerifier = 1;
}

def Precision_UnscaleAndCheckOp : Op<Precision_Dialect, "unscale_and_check",
    [Pure]> {
  let summary = "divides scaled gradients by the loss scale; flags inf/NaN";
  let description = [{
    Dynamic loss scaling's second half: `grads / scale`, and `found_inf`
    = 1.0 when any gradient is infinite or NaN (else 0.0), so the runtime
    skips the step and halves the scale.

    ```mlir
    %g, %inf = precision.unscale_and_check %grads, %scale
        : (tensor<1000xf32>, tensor<f32>) -> (tensor<1000xf32>, tensor<f32>)
    ```
  }];
  let arguments = (ins RankedTensorOf<[F32]>:$grads, RankedTensorOf<[F32]>:$scale);
  let results = (outs RankedTensorOf<[F32]>:$unscaled, RankedTensorOf<[F32]>:$found_inf);
  let assemblyFormat =
    "$grads `,` $scale attr-dict `:` functional-type(operands, results)";
}

#endif // TESSERA_PRECISION_DIALECT
