// Sums over leading dimensions of >= 4096 rows (bias and norm-weight
// gradients) are split into P partial sums of Q consecutive rows, P the
// divisor of the row count nearest its square root, then a sum of the
// partials. On a GPU each (partial, column) is a thread instead of each
// column looping over every row; in f32 the rounding error grows with
// P + Q rather than with the row count.
// RUN: tessera-opt %s --convert-nn-to-linalg | FileCheck %s

// CHECK-LABEL: func.func @rows
// CHECK: %[[X:.*]] = tensor.expand_shape %{{.*}} {{\[\[}}0, 1], [2]] output_shape [64, 64, 12] : tensor<4096x12xf32> into tensor<64x64x12xf32>
// CHECK: %[[P:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "reduction", "parallel"]} ins(%[[X]] : tensor<64x64x12xf32>) outs(%{{.*}} : tensor<64x12xf32>)
// CHECK: linalg.generic {{.*}} iterator_types = ["reduction", "parallel"]} ins(%[[P]] : tensor<64x12xf32>) outs(%{{.*}} : tensor<1x12xf32>)
func.func @rows(%x: tensor<4096x12xf32>) -> tensor<12xf32> {
  %s = nn.reduce_sum %x {dim = 0 : i64} : (tensor<4096x12xf32>) -> tensor<12xf32>
  return %s : tensor<12xf32>
}

// Two leading dimensions (8 x 1024 = 8192 rows, GPT-2's batch: 128 partial
// sums of 64 rows) are flattened first; the weight, which has no row
// dimension, broadcasts.
// CHECK-LABEL: func.func @layer_norm_grad
// CHECK: tensor.collapse_shape %{{.*}} {{\[\[}}0, 1], [2]] : tensor<8x1024x16xf32> into tensor<8192x16xf32>
// CHECK: tensor.expand_shape %{{.*}} {{\[\[}}0, 1], [2]] output_shape [128, 64, 16] : tensor<8192x16xf32> into tensor<128x64x16xf32>
// CHECK: outs(%{{.*}} : tensor<128x16xf32>)
// CHECK: outs(%{{.*}} : tensor<1x16xf32>)
// CHECK: tensor.expand_shape %{{.*}} {{\[\[}}0, 1], [2]] output_shape [1, 1, 16] : tensor<1x16xf32> into tensor<1x1x16xf32>
func.func @layer_norm_grad(%g: tensor<8x1024x16xf32>, %x: tensor<8x1024x16xf32>, %w: tensor<16xf32>) -> (tensor<8x1024x16xf32>, tensor<16xf32>, tensor<16xf32>) {
  %dx, %dw, %db = nn.layer_norm_grad %g, %x, %w {eps = 1.0e-05 : f64} : (tensor<8x1024x16xf32>, tensor<8x1024x16xf32>, tensor<16xf32>) -> (tensor<8x1024x16xf32>, tensor<16xf32>, tensor<16xf32>)
  return %dx, %dw, %db : tensor<8x1024x16xf32>, tensor<16xf32>, tensor<16xf32>
}

// Fewer rows: one sum per column, as before.
// CHECK-LABEL: func.func @few_rows
// CHECK-NOT: tensor.expand_shape
// CHECK: linalg.generic {{.*}} iterator_types = ["reduction", "parallel"]} ins(%{{.*}} : tensor<100x12xf32>)
func.func @few_rows(%x: tensor<100x12xf32>) -> tensor<12xf32> {
  %s = nn.reduce_sum %x {dim = 0 : i64} : (tensor<100x12xf32>) -> tensor<12xf32>
  return %s : tensor<12xf32>
}
