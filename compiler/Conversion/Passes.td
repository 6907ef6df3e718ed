//===- Passes.td - Tessera conversion passes ----------------*- tablegen -*-===//

#ifndef TESSERA_CONVERSION_PASSES
#define TESSERA_CONVERSION_PASSES

include "mlir/Pass/PassBase.td"

def ConvertNNToLinalg : Pass<"convert-nn-to-linalg", "mlir::ModuleOp"> {
  let summary = "Lower nn ops to linalg/tensor/arith/math on static shapes";
  let description = [{
    Element-wise ops become `linalg.generic` with broadcasting indexing maps;
    `linear` and `matmul` become contractions (`linalg.generic` with a
    reduction dimension, zero-filled accumulators); `transpose` becomes
    `linalg.transpose` and `reshape` `tensor.reshape`. Ops not covered yet,
    and ops with dynamic dimensions, are reported as errors.
  }];
  let dependentDialects = ["mlir::linalg::LinalgDialect",
                           "mlir::tensor::TensorDialect",
                           "mlir::arith::ArithDialect",
                           "mlir::math::MathDialect"];
}

#endif // TESSERA_CONVERSION_PASSES
