// RUN: tessera-opt %s --convert-nn-to-linalg -verify-diagnostics

// Ops without a lowering yet are reported, not left behind silently.
func.func @softmax(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  // expected-error @+1 {{'nn.softmax' op has no lowering to linalg yet}}
  %y = nn.softmax %x {dim = -1 : i64} : tensor<2x3xf32>
  return %y : tensor<2x3xf32>
}
