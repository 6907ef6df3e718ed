// A sum of slice_grads of disjoint boxes is each gradient inserted into
// its box: no zero-filled full tensors, no adds. Zeros are filled where
// the boxes leave a gap; overlapping boxes are added as before.
// RUN: tessera-opt %s --convert-nn-to-linalg | FileCheck %s

// CHECK-LABEL: func.func @qkv
// CHECK-NOT: linalg.fill
// CHECK-NOT: linalg.generic
// CHECK: %[[E:.*]] = tensor.empty() : tensor<2x3x12xf32>
// CHECK: %[[A:.*]] = tensor.insert_slice %arg2 into %[[E]][0, 0, 8] [2, 3, 4] [1, 1, 1]
// CHECK: %[[B:.*]] = tensor.insert_slice %arg1 into %[[A]][0, 0, 4] [2, 3, 4] [1, 1, 1]
// CHECK: %[[C:.*]] = tensor.insert_slice %arg0 into %[[B]][0, 0, 0] [2, 3, 4] [1, 1, 1]
// CHECK: return %[[C]]
func.func @qkv(%q: tensor<2x3x4xf32>, %k: tensor<2x3x4xf32>,
               %v: tensor<2x3x4xf32>) -> tensor<2x3x12xf32> {
  %gv = nn.slice_grad %v {start = array<i64: 0, 0, 8>, limit = array<i64: 2, 3, 12>, stride = array<i64: 1, 1, 1>} : (tensor<2x3x4xf32>) -> tensor<2x3x12xf32>
  %gk = nn.slice_grad %k {start = array<i64: 0, 0, 4>, limit = array<i64: 2, 3, 8>, stride = array<i64: 1, 1, 1>} : (tensor<2x3x4xf32>) -> tensor<2x3x12xf32>
  %s = nn.add %gv, %gk : (tensor<2x3x12xf32>, tensor<2x3x12xf32>) -> tensor<2x3x12xf32>
  %gq = nn.slice_grad %q {start = array<i64: 0, 0, 0>, limit = array<i64: 2, 3, 4>, stride = array<i64: 1, 1, 1>} : (tensor<2x3x4xf32>) -> tensor<2x3x12xf32>
  %r = nn.add %s, %gq : (tensor<2x3x12xf32>, tensor<2x3x12xf32>) -> tensor<2x3x12xf32>
  return %r : tensor<2x3x12xf32>
}

// CHECK-LABEL: func.func @gap
// CHECK-NOT: linalg.generic
// CHECK: %[[Z:.*]] = linalg.fill ins(%{{.*}} : f32) outs(%{{.*}} : tensor<2x10xf32>)
// CHECK: %[[A:.*]] = tensor.insert_slice %arg0 into %[[Z]][0, 0] [2, 4] [1, 1]
// CHECK: tensor.insert_slice %arg1 into %[[A]][0, 6] [2, 4] [1, 1]
func.func @gap(%a: tensor<2x4xf32>, %b: tensor<2x4xf32>) -> tensor<2x10xf32> {
  %ga = nn.slice_grad %a {start = array<i64: 0, 0>, limit = array<i64: 2, 4>, stride = array<i64: 1, 1>} : (tensor<2x4xf32>) -> tensor<2x10xf32>
  %gb = nn.slice_grad %b {start = array<i64: 0, 6>, limit = array<i64: 2, 10>, stride = array<i64: 1, 1>} : (tensor<2x4xf32>) -> tensor<2x10xf32>
  %r = nn.add %ga, %gb : (tensor<2x10xf32>, tensor<2x10xf32>) -> tensor<2x10xf32>
  return %r : tensor<2x10xf32>
}

// CHECK-LABEL: func.func @overlap
// CHECK: linalg.fill
// CHECK: linalg.fill
// CHECK: linalg.generic
// CHECK: arith.addf
func.func @overlap(%a: tensor<2x6xf32>, %b: tensor<2x6xf32>) -> tensor<2x10xf32> {
  %ga = nn.slice_grad %a {start = array<i64: 0, 0>, limit = array<i64: 2, 6>, stride = array<i64: 1, 1>} : (tensor<2x6xf32>) -> tensor<2x10xf32>
  %gb = nn.slice_grad %b {start = array<i64: 0, 4>, limit = array<i64: 2, 10>, stride = array<i64: 1, 1>} : (tensor<2x6xf32>) -> tensor<2x10xf32>
  %r = nn.add %ga, %gb : (tensor<2x10xf32>, tensor<2x10xf32>) -> tensor<2x10xf32>
  return %r : tensor<2x10xf32>
}
