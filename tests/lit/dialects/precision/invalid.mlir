// RUN: tessera-opt %s -verify-diagnostics

func.func @format(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{format must be "bf16" or "f16", got "fp8"}}
  %0 = precision.round %x {format = "fp8"} : tensor<4xf32>
  return %0 : tensor<4xf32>
}
