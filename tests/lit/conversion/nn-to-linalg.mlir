// convert-nn-to-linalg: contractions, broadcasting element-wise ops,
// transpose and reshape.
// RUN: tessera-opt %s --convert-nn-to-linalg --split-input-file | FileCheck %s

// linear = zero-filled contraction over k, then a broadcast bias add.
// CHECK-DAG: #[[X:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
// CHECK-DAG: #[[W:.+]] = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
// CHECK-DAG: #[[B:.+]] = affine_map<(d0, d1, d2) -> (d2)>
// CHECK-LABEL: func @linear
// CHECK: %[[FILL:.+]] = linalg.fill
// CHECK: linalg.generic {indexing_maps = [#[[X]], #[[W]], {{.*}}], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
// CHECK: arith.mulf
// CHECK: arith.addf
// CHECK: linalg.generic {indexing_maps = [{{.*}}, #[[B]], {{.*}}]
func.func @linear(%x: tensor<2x5x3xf32>, %w: tensor<4x3xf32>, %b: tensor<4xf32>) -> tensor<2x5x4xf32> {
  %y = nn.linear %x, %w, %b : (tensor<2x5x3xf32>, tensor<4x3xf32>, tensor<4xf32>) -> tensor<2x5x4xf32>
  return %y : tensor<2x5x4xf32>
}

// -----

// A size-1 dimension broadcasts through a constant index.
// CHECK-DAG: #[[ONE:.+]] = affine_map<(d0, d1) -> (0, d1)>
// CHECK-LABEL: func @broadcast_add
// CHECK: linalg.generic {indexing_maps = [{{.*}}, #[[ONE]], {{.*}}]
// CHECK: arith.addf
func.func @broadcast_add(%a: tensor<3x4xf32>, %b: tensor<1x4xf32>) -> tensor<3x4xf32> {
  %y = nn.add %a, %b : (tensor<3x4xf32>, tensor<1x4xf32>) -> tensor<3x4xf32>
  return %y : tensor<3x4xf32>
}

// -----

// CHECK-LABEL: func @shapes
// CHECK: linalg.transpose ins(%{{.*}} : tensor<2x3x4xf32>) outs(%{{.*}} : tensor<2x4x3xf32>) permutation = [0, 2, 1]
// CHECK: tensor.reshape %{{.*}}(%{{.*}}) : (tensor<2x4x3xf32>, tensor<2xindex>) -> tensor<8x3xf32>
func.func @shapes(%x: tensor<2x3x4xf32>) -> tensor<8x3xf32> {
  %t = nn.transpose %x {dim0 = -1 : i64, dim1 = 1 : i64} : (tensor<2x3x4xf32>) -> tensor<2x4x3xf32>
  %r = nn.reshape %t : (tensor<2x4x3xf32>) -> tensor<8x3xf32>
  return %r : tensor<8x3xf32>
}

