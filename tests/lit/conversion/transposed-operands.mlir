// Tensor-core matmuls read transposed operands in place. A weight's
// gradient, dW = x^T dy, reads x ([B, T, K] collapsed to [B T, K]) as an
// M-major A (indexing map (k, m)); a product with a transposed weight
// reads the weight in B's other orientation. No transposed copy is made.
// RUN: tessera-opt %s --pass-pipeline="builtin.module(convert-nn-to-linalg,tessera-gpu-select-tensor-cores,canonicalize)" | FileCheck %s

// CHECK-DAG: #[[KM:.*]] = affine_map<(d0, d1, d2) -> (d2, d0)>
// CHECK-DAG: #[[KN:.*]] = affine_map<(d0, d1, d2) -> (d2, d1)>
// CHECK-DAG: #[[NK:.*]] = affine_map<(d0, d1, d2) -> (d1, d2)>
// CHECK-DAG: #[[MK:.*]] = affine_map<(d0, d1, d2) -> (d0, d2)>

// CHECK-LABEL: func.func @weight_grad
// CHECK-NOT: linalg.transpose
// CHECK: %[[X:.*]] = linalg.generic {{.*}} ins(%arg0 : tensor<2x128x256xf32>) outs(%{{.*}} : tensor<2x128x256xf16>)
// CHECK: %[[G:.*]] = linalg.generic {{.*}} ins(%arg1 : tensor<2x128x128xf32>) outs(%{{.*}} : tensor<2x128x128xf16>)
// CHECK-DAG: %[[XF:.*]] = tensor.reshape %[[X]]({{.*}}) : (tensor<2x128x256xf16>, tensor<2xindex>) -> tensor<256x256xf16>
// CHECK-DAG: %[[GF:.*]] = tensor.reshape %[[G]]({{.*}}) : (tensor<2x128x128xf16>, tensor<2xindex>) -> tensor<256x128xf16>
// CHECK: linalg.generic {indexing_maps = [#[[KM]], #[[KN]], #{{.*}}], {{.*}} ins(%[[XF]], %[[GF]] : tensor<256x256xf16>, tensor<256x128xf16>) outs(%{{.*}} : tensor<256x128xf32>) attrs = {tessera.mma = "bf16"}
// CHECK-NOT: linalg.transpose
// CHECK: return
func.func @weight_grad(%x: tensor<2x128x256xf32>, %g: tensor<2x128x128xf32>) -> tensor<256x128xf32> {
  %xr = precision.round %x {format = "bf16"} : tensor<2x128x256xf32>
  %gr = precision.round %g {format = "bf16"} : tensor<2x128x128xf32>
  %x2 = nn.reshape %xr : (tensor<2x128x256xf32>) -> tensor<256x256xf32>
  %g2 = nn.reshape %gr : (tensor<2x128x128xf32>) -> tensor<256x128xf32>
  %xt = nn.transpose %x2 {dim0 = 0 : i64, dim1 = 1 : i64} : (tensor<256x256xf32>) -> tensor<256x256xf32>
  %dw = nn.matmul %xt, %g2 : (tensor<256x256xf32>, tensor<256x128xf32>) -> tensor<256x128xf32>
  return %dw : tensor<256x128xf32>
}

// dx = dy w with w = v^T: v itself is B, N x K (K-major).
// CHECK-LABEL: func.func @transposed_weight
// CHECK-NOT: linalg.transpose
// CHECK: %[[V:.*]] = linalg.generic {{.*}} ins(%arg1 : tensor<256x128xf32>) outs(%{{.*}} : tensor<256x128xf16>)
// CHECK: linalg.generic {indexing_maps = [#[[MK]], #[[NK]], #{{.*}}], {{.*}} ins(%{{.*}}, %[[V]] : tensor<256x128xf16>, tensor<256x128xf16>) outs(%{{.*}} : tensor<256x256xf32>) attrs = {tessera.mma = "bf16"}
// CHECK-NOT: linalg.transpose
// CHECK: return
func.func @transposed_weight(%g: tensor<2x128x128xf32>, %v: tensor<256x128xf32>) -> tensor<2x128x256xf32> {
  %gr = precision.round %g {format = "bf16"} : tensor<2x128x128xf32>
  %vr = precision.round %v {format = "bf16"} : tensor<256x128xf32>
  %w = nn.transpose %vr {dim0 = 0 : i64, dim1 = 1 : i64} : (tensor<256x128xf32>) -> tensor<128x256xf32>
  %dx = nn.matmul %gr, %w : (tensor<2x128x128xf32>, tensor<128x256xf32>) -> tensor<2x128x256xf32>
  return %dx : tensor<2x128x256xf32>
}

// The form the gradient of a linear layer takes: x [B, T, K] moved to
// [K, B, T] and collapsed to [K, B T]; A is x collapsed to [B T, K].
// CHECK-LABEL: func.func @collapsed_transpose
// CHECK-NOT: linalg.transpose
// CHECK: %[[X:.*]] = linalg.generic {{.*}} ins(%arg0 : tensor<2x128x256xf32>) outs(%{{.*}} : tensor<2x128x256xf16>)
// CHECK: %[[XF:.*]] = tensor.collapse_shape %[[X]] {{\[\[}}0, 1], [2]] : tensor<2x128x256xf16> into tensor<256x256xf16>
// CHECK: linalg.generic {indexing_maps = [#[[KM]], #[[KN]], #{{.*}}], {{.*}} ins(%[[XF]], %{{.*}} : tensor<256x256xf16>, tensor<256x128xf16>) outs(%{{.*}} : tensor<256x128xf32>) attrs = {tessera.mma = "bf16"}
// CHECK-NOT: linalg.transpose
// CHECK: return
func.func @collapsed_transpose(%x: tensor<2x128x256xf32>, %g: tensor<256x128xf32>) -> tensor<256x128xf32> {
  %zero = arith.constant 0.0 : f32
  %xr = precision.round %x {format = "bf16"} : tensor<2x128x256xf32>
  %gr = precision.round %g {format = "bf16"} : tensor<256x128xf32>
  %e = tensor.empty() : tensor<256x2x128xf32>
  %xt = linalg.transpose ins(%xr : tensor<2x128x256xf32>) outs(%e : tensor<256x2x128xf32>) permutation = [2, 0, 1]
  %a = tensor.collapse_shape %xt [[0], [1, 2]] : tensor<256x2x128xf32> into tensor<256x256xf32>
  %ce = tensor.empty() : tensor<256x128xf32>
  %c = linalg.fill ins(%zero : f32) outs(%ce : tensor<256x128xf32>) -> tensor<256x128xf32>
  %dw = linalg.generic {indexing_maps = [affine_map<(m, n, k) -> (m, k)>, affine_map<(m, n, k) -> (k, n)>, affine_map<(m, n, k) -> (m, n)>],
                        iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%a, %gr : tensor<256x256xf32>, tensor<256x128xf32>) outs(%c : tensor<256x128xf32>) {
  ^bb0(%p: f32, %q: f32, %acc: f32):
    %m = arith.mulf %p, %q : f32
    %s = arith.addf %acc, %m : f32
    linalg.yield %s : f32
  } -> tensor<256x128xf32>
  return %dw : tensor<256x128xf32>
}
