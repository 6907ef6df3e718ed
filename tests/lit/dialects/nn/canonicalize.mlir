// Folds of the nn dialect.
// RUN: tessera-opt %s -canonicalize | FileCheck %s

// transpose(transpose(x, 0, 1), 1, 0) -> x
// CHECK-LABEL: func @double_transpose
// CHECK-NEXT: return %arg0
func.func @double_transpose(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %a = nn.transpose %x {dim0 = 0 : i64, dim1 = 1 : i64} : (tensor<2x3xf32>) -> tensor<3x2xf32>
  %b = nn.transpose %a {dim0 = 1 : i64, dim1 = 0 : i64} : (tensor<3x2xf32>) -> tensor<2x3xf32>
  return %b : tensor<2x3xf32>
}

// reshape(reshape(x : A) : B) : A -> x
// CHECK-LABEL: func @reshape_round_trip
// CHECK-NEXT: return %arg0
func.func @reshape_round_trip(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %a = nn.reshape %x : (tensor<2x3xf32>) -> tensor<6xf32>
  %b = nn.reshape %a : (tensor<6xf32>) -> tensor<2x3xf32>
  return %b : tensor<2x3xf32>
}

// transpose(x, 1, 1) -> x
// CHECK-LABEL: func @self_transpose
// CHECK-NEXT: return %arg0
func.func @self_transpose(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
  %a = nn.transpose %x {dim0 = 1 : i64, dim1 = -1 : i64} : (tensor<2x3xf32>) -> tensor<2x3xf32>
  return %a : tensor<2x3xf32>
}
