// RUN: tessera-opt %s --pass-pipeline='builtin.module(func.func(tessera-split-reductions))' | FileCheck %s

// A sum of squares over 225024 gradients: d = 586, the divisor closest to
// sqrt(225024) = 474.4. Partial p sums elements p, p + 586, ... (the
// parallel dimension is the inner one, so neighbouring threads read
// neighbouring elements); the 586 partials, below min-size, are summed by
// one reduction.
// CHECK-LABEL: func.func @sum_of_squares
// CHECK: %[[E:.*]] = tensor.expand_shape %arg0 {{\[\[}}0, 1]] output_shape [384, 586]
// CHECK: %[[P:.*]] = linalg.generic {{.*}} iterator_types = ["reduction", "parallel"]} ins(%[[E]] : tensor<384x586xf32>)
// CHECK: arith.mulf
// CHECK: arith.addf
// CHECK: linalg.generic {{.*}} iterator_types = ["reduction"]} ins(%[[P]] : tensor<586xf32>)
func.func @sum_of_squares(%g: tensor<225024xf32>) -> tensor<f32> {
  %zero = arith.constant 0.0 : f32
  %init = tensor.empty() : tensor<f32>
  %acc = linalg.fill ins(%zero : f32) outs(%init : tensor<f32>) -> tensor<f32>
  %r = linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> ()>],
                       iterator_types = ["reduction"]}
      ins(%g : tensor<225024xf32>) outs(%acc : tensor<f32>) {
  ^bb0(%x: f32, %a: f32):
    %sq = arith.mulf %x, %x : f32
    %s = arith.addf %a, %sq : f32
    linalg.yield %s : f32
  } -> tensor<f32>
  return %r : tensor<f32>
}

// Small reductions stay as they are.
// CHECK-LABEL: func.func @small
// CHECK-NOT: tensor.expand_shape
// CHECK: iterator_types = ["reduction"]
func.func @small(%g: tensor<1024xf32>) -> tensor<f32> {
  %zero = arith.constant 0.0 : f32
  %init = tensor.empty() : tensor<f32>
  %acc = linalg.fill ins(%zero : f32) outs(%init : tensor<f32>) -> tensor<f32>
  %r = linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> ()>],
                       iterator_types = ["reduction"]}
      ins(%g : tensor<1024xf32>) outs(%acc : tensor<f32>) {
  ^bb0(%x: f32, %a: f32):
    %s = arith.addf %a, %x : f32
    linalg.yield %s : f32
  } -> tensor<f32>
  return %r : tensor<f32>
}

// A loss's sum over rows, fused with the gather that reads [N, 1] through
// a constant index: not split (the split would expand that operand into an
// invalid shape; found compiling a 4096-row cross-entropy).
// CHECK-LABEL: func.func @constant_index_input
// CHECK-NOT: tensor.expand_shape
// CHECK: iterator_types = ["reduction"]
func.func @constant_index_input(%rows: tensor<4096x1xf32>) -> tensor<1xf32> {
  %zero = arith.constant 0.0 : f32
  %init = tensor.empty() : tensor<1xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%init : tensor<1xf32>) -> tensor<1xf32>
  %r = linalg.generic {indexing_maps = [affine_map<(d0) -> (d0, 0)>, affine_map<(d0) -> (0)>],
                       iterator_types = ["reduction"]}
      ins(%rows : tensor<4096x1xf32>) outs(%acc : tensor<1xf32>) {
  ^bb0(%x: f32, %a: f32):
    %n = arith.negf %x : f32
    %s = arith.addf %a, %n : f32
    linalg.yield %s : f32
  } -> tensor<1xf32>
  return %r : tensor<1xf32>
}
