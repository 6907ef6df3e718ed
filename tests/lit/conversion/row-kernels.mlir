// Row reductions with `row-kernels` (the GPU pipeline): each op is one
// scf.forall over the rows, its statistics in vector lanes (4 wide for
// rows of 12, 2 for 6, 1 for 17) and its row written chunk by chunk. No
// [rows, 1] statistics tensors are left between loop nests.
// RUN: tessera-opt %s --convert-nn-to-linalg=row-kernels | FileCheck %s
// Without the option: the linalg reductions (and their [rows, 1] results).
// RUN: tessera-opt %s --convert-nn-to-linalg | FileCheck %s --check-prefix=LINALG

// LINALG: tensor<2x3x1xf32>

// CHECK-LABEL: func.func @layer_norm
// CHECK-NOT: linalg
// CHECK-NOT: x1xf32>
// CHECK: %[[X:.*]] = tensor.collapse_shape %{{.*}} {{\[\[}}0, 1], [2]] : tensor<2x3x12xf32> into tensor<6x12xf32>
// CHECK: scf.forall (%[[R:.*]]) in (6) shared_outs(%{{.*}} = %{{.*}}) -> (tensor<6x12xf32>)
// Mean, then squared deviations: two passes in steps of 4.
// CHECK:   scf.for %[[C:.*]] = %c0 to %c12 step %c4 iter_args({{.*}}) -> (vector<4xf32>)
// CHECK:     vector.transfer_read %[[X]][%[[R]], %[[C]]]{{.*}} : tensor<6x12xf32>, vector<4xf32>
// CHECK:   vector.reduction <add>
// CHECK:   scf.for {{.*}} step %c4 iter_args({{.*}}) -> (vector<4xf32>)
// CHECK:   math.rsqrt
// Then the row, 4 floats at a time.
// CHECK:   scf.for {{.*}} step %c4 iter_args({{.*}}) -> (tensor<1x12xf32>)
// CHECK:     vector.transfer_write {{.*}} : vector<4xf32>, tensor<1x12xf32>
// CHECK:   tensor.parallel_insert_slice
// CHECK: tensor.expand_shape
// CHECK-NOT: linalg
// CHECK-LABEL: func.func @layer_norm_grad
func.func @layer_norm(%x: tensor<2x3x12xf32>, %w: tensor<12xf32>, %b: tensor<12xf32>) -> tensor<2x3x12xf32> {
  %r = nn.layer_norm %x, %w, %b {eps = 1.0e-05 : f64} : (tensor<2x3x12xf32>, tensor<12xf32>, tensor<12xf32>) -> tensor<2x3x12xf32>
  return %r : tensor<2x3x12xf32>
}

// The gradient: dx per row, which also writes the row's mean and
// 1/sqrt(var + eps); the weight and bias gradients sum over rows.
// CHECK: scf.forall ({{.*}}) in (6) shared_outs({{.*}}) -> (tensor<6x12xf32>, tensor<6xf32>, tensor<6xf32>)
// CHECK: tensor.expand_shape {{.*}} : tensor<6xf32> into tensor<2x3x1xf32>
// CHECK: linalg.generic
func.func @layer_norm_grad(%g: tensor<2x3x12xf32>, %x: tensor<2x3x12xf32>, %w: tensor<12xf32>) -> (tensor<2x3x12xf32>, tensor<12xf32>, tensor<12xf32>) {
  %dx, %dw, %db = nn.layer_norm_grad %g, %x, %w {eps = 1.0e-05 : f64} : (tensor<2x3x12xf32>, tensor<2x3x12xf32>, tensor<12xf32>) -> (tensor<2x3x12xf32>, tensor<12xf32>, tensor<12xf32>)
  return %dx, %dw, %db : tensor<2x3x12xf32>, tensor<12xf32>, tensor<12xf32>
}

// Softmax: one pass for the max and sum (online, per lane; lanes that saw
// only -inf are shifted by 0), one to write.
// CHECK-LABEL: func.func @softmax
// CHECK: scf.forall ({{.*}}) in (5) shared_outs({{.*}}) -> (tensor<5x6xf32>)
// CHECK:   scf.for {{.*}} step %c2 iter_args({{.*}}) -> (vector<2xf32>, vector<2xf32>)
// CHECK:     arith.maximumf {{.*}} : vector<2xf32>
// CHECK:     arith.cmpf oeq
// CHECK:     arith.select
// CHECK:     math.fma
// CHECK:   vector.reduction <maximumf>
// CHECK:   scf.for {{.*}} step %c2 iter_args({{.*}}) -> (tensor<1x6xf32>)
// CHECK:     arith.divf {{.*}} : vector<2xf32>
func.func @softmax(%x: tensor<5x6xf32>) -> tensor<5x6xf32> {
  %r = nn.softmax %x {dim = -1 : i64} : tensor<5x6xf32>
  return %r : tensor<5x6xf32>
}

// Softmax over another dimension keeps the linalg lowering.
// CHECK-LABEL: func.func @softmax_dim0
// CHECK-NOT: scf.forall
// CHECK: linalg.generic
func.func @softmax_dim0(%x: tensor<5x6xf32>) -> tensor<5x6xf32> {
  %r = nn.softmax %x {dim = 0 : i64} : tensor<5x6xf32>
  return %r : tensor<5x6xf32>
}

// Cross-entropy: a loss per row (log-sum-exp minus the target's logit),
// then a rank-0 sum over rows.
// CHECK-LABEL: func.func @cross_entropy
// CHECK: %[[T:.*]] = tensor.collapse_shape %{{.*}} {{\[\[}}0, 1]] : tensor<2x3xi32> into tensor<6xi32>
// CHECK: scf.forall (%[[R:.*]]) in (6) shared_outs({{.*}}) -> (tensor<6xf32>)
// CHECK:   scf.for {{.*}} step %c1 iter_args({{.*}}) -> (vector<1xf32>, vector<1xf32>)
// CHECK:   math.log
// CHECK:   tensor.extract %[[T]][%[[R]]]
// CHECK: linalg.generic {{.*}} iterator_types = ["reduction"]
// CHECK-SAME: outs(%{{.*}} : tensor<f32>)
func.func @cross_entropy(%l: tensor<2x3x17xf32>, %t: tensor<2x3xi32>) -> tensor<f32> {
  %r = nn.cross_entropy %l, %t : (tensor<2x3x17xf32>, tensor<2x3xi32>) -> tensor<f32>
  return %r : tensor<f32>
}

// Its gradient: (softmax - onehot) * g / 6 per row, the one-hot built lane
// by lane from the column index.
// CHECK-LABEL: func.func @cross_entropy_grad
// CHECK: scf.forall ({{.*}}) in (6) shared_outs({{.*}}) -> (tensor<6x8xf32>)
// CHECK:   scf.for {{.*}} step %c4 iter_args({{.*}}) -> (tensor<1x8xf32>)
// CHECK:     arith.cmpi eq
// CHECK:     vector.from_elements {{.*}} : vector<4xf32>
func.func @cross_entropy_grad(%g: tensor<f32>, %l: tensor<2x3x8xf32>, %t: tensor<2x3xi32>) -> tensor<2x3x8xf32> {
  %r = nn.cross_entropy_grad %g, %l, %t : (tensor<f32>, tensor<2x3x8xf32>, tensor<2x3xi32>) -> tensor<2x3x8xf32>
  return %r : tensor<2x3x8xf32>
}

// RMS norm and its gradient.
// CHECK-LABEL: func.func @rms_norm
// CHECK: scf.forall ({{.*}}) in (5) shared_outs({{.*}}) -> (tensor<5x6xf32>)
// CHECK: scf.forall ({{.*}}) in (5) shared_outs({{.*}}) -> (tensor<5x6xf32>, tensor<5xf32>)
func.func @rms_norm(%x: tensor<5x6xf32>, %w: tensor<6xf32>, %g: tensor<5x6xf32>) -> (tensor<5x6xf32>, tensor<5x6xf32>, tensor<6xf32>) {
  %r = nn.rms_norm %x, %w {eps = 1.0e-06 : f64} : (tensor<5x6xf32>, tensor<6xf32>) -> tensor<5x6xf32>
  %dx, %dw = nn.rms_norm_grad %g, %x, %w {eps = 1.0e-06 : f64} : (tensor<5x6xf32>, tensor<5x6xf32>, tensor<6xf32>) -> (tensor<5x6xf32>, tensor<6xf32>)
  return %r, %dx, %dw : tensor<5x6xf32>, tensor<5x6xf32>, tensor<6xf32>
}
