// Row reductions with `row-kernels` (the GPU pipeline): each op is one
// scf.forall over the rows, its statistics in vector lanes (4 wide for
// rows of 12, 2 for 6, 1 for 17) and its row written chunk by chunk. No
// [rows, 1] statistics tensors are left between loop nests.
// RUN: tessera-opt %s --convert-nn-to-linalg=row-kernels | FileCheck %s
// RUN: tessera-opt %s --convert-nn-to-linalg="row-kernels warp-rows" | FileCheck %s --check-prefix=WARP
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

// A training step's loss and its gradient on the same logits: one kernel
// for both (the softmax statistics once), writing the gradient and the
// per-row losses, then the mean.
// CHECK-LABEL: func.func @cross_entropy_with_grad
// CHECK: scf.forall ({{.*}}) in (6) shared_outs({{.*}}) -> (tensor<6x8xf32>, tensor<6xf32>)
// CHECK:   math.log
// CHECK:   vector.from_elements {{.*}} : vector<4xf32>
// CHECK-NOT: scf.forall (
// CHECK: linalg.generic {{.*}} iterator_types = ["reduction"]
// CHECK-NOT: scf.forall (
// CHECK: return
// With warp-rows (the GPU's): a stand-in launch of 256 threads (8 rows a
// block, one block for 6 rows) reading the buffers of the logits, the
// targets and g (rank 0, passed as [1]) and writing the gradient and the
// per-row losses; tessera-gpu-tensor-core-matmuls builds its body.
// WARP-LABEL: func.func @cross_entropy_with_grad
// WARP-DAG: %[[L:.*]] = bufferization.to_buffer {{.*}} : tensor<6x8xf32> to memref<6x8xf32>
// WARP-DAG: %[[T:.*]] = bufferization.to_buffer {{.*}} : tensor<6xi32> to memref<6xi32>
// WARP-DAG: %[[G:.*]] = bufferization.to_buffer {{.*}} : tensor<1xf32> to memref<1xf32>
// WARP: gpu.launch blocks({{.*}}) in ({{.*}} = %c1, {{.*}} = %c1, {{.*}} = %c1) threads({{.*}}) in ({{.*}} = %c256, {{.*}} = %c1, {{.*}} = %c1)
// WARP: vector.load %[[L]]
// WARP: vector.load %[[T]]
// WARP: vector.load %[[G]]
// WARP: } {tessera.warp_rows = {kind = "cross_entropy_with_grad", param = 0.1666{{[0-9]*}} : f64}}
func.func @cross_entropy_with_grad(%l: tensor<2x3x8xf32>, %t: tensor<2x3xi32>) -> (tensor<f32>, tensor<2x3x8xf32>) {
  %loss = nn.cross_entropy %l, %t : (tensor<2x3x8xf32>, tensor<2x3xi32>) -> tensor<f32>
  %one = arith.constant dense<1.0> : tensor<f32>
  %d = nn.cross_entropy_grad %one, %l, %t : (tensor<f32>, tensor<2x3x8xf32>, tensor<2x3xi32>) -> tensor<2x3x8xf32>
  return %loss, %d : tensor<f32>, tensor<2x3x8xf32>
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

// The embedding gradient: one loop per (block of table rows, column), here
// 12 blocks of 2 rows of a 24-row table (the largest divisor of 24 with
// blocks * 5000 <= 65536). Each walks all 6 indices in order and adds the
// ones in its block; the unsigned compare also skips rows before it.
// CHECK-LABEL: func.func @embedding_grad
// CHECK: %[[IDX:.*]] = tensor.collapse_shape %{{.*}} {{\[\[}}0, 1]] : tensor<2x3xi32> into tensor<6xi32>
// CHECK: scf.forall (%[[P:.*]], %[[C:.*]]) in (12, 5000) shared_outs(%[[ACC:.*]] = %{{.*}}) -> (tensor<24x5000xf32>)
// CHECK:   %[[FIRST:.*]] = arith.muli %[[P]], %c2
// CHECK:   tensor.extract_slice %[[ACC]][%[[FIRST]], %[[C]]] [2, 1] [1, 1]
// CHECK:   scf.for %[[I:.*]] = %c0 to %c6 step %c1
// CHECK:     %[[T:.*]] = arith.index_cast
// CHECK:     %[[LOCAL:.*]] = arith.subi %[[T]], %[[FIRST]]
// CHECK:     %[[MINE:.*]] = arith.cmpi ult, %[[LOCAL]], %c2
// CHECK:     scf.if %[[MINE]]
// CHECK:   tensor.parallel_insert_slice
func.func @embedding_grad(%g: tensor<2x3x5000xf32>, %i: tensor<2x3xi32>) -> tensor<24x5000xf32> {
  %r = nn.embedding_grad %g, %i : (tensor<2x3x5000xf32>, tensor<2x3xi32>) -> tensor<24x5000xf32>
  return %r : tensor<24x5000xf32>
}

// An embedding gradient added to another gradient of the table (a tied
// head's): the loops add the rows into that gradient instead of zeros.
// CHECK-LABEL: func.func @embedding_grad_sum
// CHECK-SAME: %[[HEAD:[^:]*]]: tensor<24x5000xf32>
// CHECK-NOT: linalg.fill
// CHECK: scf.forall ({{.*}}) in (12, 5000) shared_outs(%{{.*}} = %[[HEAD]]) -> (tensor<24x5000xf32>)
// CHECK-NOT: linalg.generic
// CHECK: return
func.func @embedding_grad_sum(%g: tensor<2x3x5000xf32>, %i: tensor<2x3xi32>, %head: tensor<24x5000xf32>) -> tensor<24x5000xf32> {
  %r = nn.embedding_grad %g, %i : (tensor<2x3x5000xf32>, tensor<2x3xi32>) -> tensor<24x5000xf32>
  %s = nn.add %head, %r : (tensor<24x5000xf32>, tensor<24x5000xf32>) -> tensor<24x5000xf32>
  return %s : tensor<24x5000xf32>
}
