// RUN: tessera-opt %s --convert-nn-to-linalg -verify-diagnostics

// Dynamic shapes are reported, not left behind silently.
func.func @dynamic(%x: tensor<?x3xf32>) -> tensor<?x3xf32> {
  // expected-error @+1 {{'nn.relu' op with dynamic shapes cannot be lowered yet}}
  %y = nn.relu %x : tensor<?x3xf32>
  return %y : tensor<?x3xf32>
}
