// Rounded f32 tensors whose readers are all linalg.generic inputs are
// stored as 16 bits: the producer yields the truncated bits, each reader
// extends them. Anything else reading them keeps the f32 tensor.
// RUN: tessera-opt %s --split-input-file --pass-pipeline="builtin.module(func.func(tessera-narrow-storage))" | FileCheck %s

#id = affine_map<(d0, d1) -> (d0, d1)>
#tr = affine_map<(d0, d1) -> (d1, d0)>

// A bias add rounded to bf16, read by two generics (one transposed):
// stored as bf16 bits in an f16 tensor, widened in both readers.
// CHECK-LABEL: func.func @two_readers
// CHECK: %[[E:.*]] = tensor.empty() : tensor<4x8xf16>
// CHECK: %[[H:.*]] = linalg.generic {{.*}} ins(%arg0, %arg1 : tensor<4x8xf32>, tensor<4x8xf32>) outs(%[[E]] : tensor<4x8xf16>)
// CHECK: ^bb0(%{{.*}}: f32, %{{.*}}: f32, %{{.*}}: f16):
// CHECK:   %[[S:.*]] = arith.addf
// CHECK:   %[[T:.*]] = arith.truncf %[[S]] : f32 to bf16
// CHECK-NOT: arith.extf
// CHECK:   %[[B:.*]] = arith.bitcast %[[T]] : bf16 to f16
// CHECK:   linalg.yield %[[B]] : f16
// CHECK: linalg.generic {{.*}} ins(%[[H]] : tensor<4x8xf16>) outs(%{{.*}} : tensor<4x8xf32>)
// CHECK: ^bb0(%[[IN:.*]]: f16, %{{.*}}: f32):
// CHECK-NEXT: %[[C:.*]] = arith.bitcast %[[IN]] : f16 to bf16
// CHECK-NEXT: %[[X:.*]] = arith.extf %[[C]] : bf16 to f32
// CHECK-NEXT: math.tanh %[[X]]
// CHECK: linalg.generic {{.*}} ins(%[[H]] : tensor<4x8xf16>) outs(%{{.*}} : tensor<8x4xf32>)
// CHECK: ^bb0(%[[IN2:.*]]: f16, %{{.*}}: f32):
// CHECK-NEXT: arith.bitcast %[[IN2]] : f16 to bf16
// CHECK-NEXT: arith.extf
func.func @two_readers(%x: tensor<4x8xf32>, %b: tensor<4x8xf32>) -> (tensor<4x8xf32>, tensor<8x4xf32>) {
  %e = tensor.empty() : tensor<4x8xf32>
  %r = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel"]} ins(%x, %b : tensor<4x8xf32>, tensor<4x8xf32>) outs(%e : tensor<4x8xf32>) {
  ^bb0(%in: f32, %in2: f32, %out: f32):
    %s = arith.addf %in, %in2 : f32
    %t = arith.truncf %s : f32 to bf16
    %w = arith.extf %t : bf16 to f32
    linalg.yield %w : f32
  } -> tensor<4x8xf32>
  %e1 = tensor.empty() : tensor<4x8xf32>
  %a = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]} ins(%r : tensor<4x8xf32>) outs(%e1 : tensor<4x8xf32>) {
  ^bb0(%in: f32, %out: f32):
    %y = math.tanh %in : f32
    linalg.yield %y : f32
  } -> tensor<4x8xf32>
  %e2 = tensor.empty() : tensor<8x4xf32>
  %c = linalg.generic {indexing_maps = [#tr, #id], iterator_types = ["parallel", "parallel"]} ins(%r : tensor<4x8xf32>) outs(%e2 : tensor<8x4xf32>) {
  ^bb0(%in: f32, %out: f32):
    %y = arith.mulf %in, %in : f32
    linalg.yield %y : f32
  } -> tensor<8x4xf32>
  return %a, %c : tensor<4x8xf32>, tensor<8x4xf32>
}

// -----

#id = affine_map<(d0, d1) -> (d0, d1)>

// Returned: the caller wants f32, so nothing changes.
// CHECK-LABEL: func.func @returned
// CHECK-NOT: tensor<4x8xf16>
// CHECK: return
func.func @returned(%x: tensor<4x8xf32>) -> (tensor<4x8xf32>, tensor<4x8xf32>) {
  %e = tensor.empty() : tensor<4x8xf32>
  %r = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<4x8xf32>) outs(%e : tensor<4x8xf32>) {
  ^bb0(%in: f32, %out: f32):
    %t = arith.truncf %in : f32 to f16
    %w = arith.extf %t : f16 to f32
    linalg.yield %w : f32
  } -> tensor<4x8xf32>
  %e1 = tensor.empty() : tensor<4x8xf32>
  %a = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]} ins(%r : tensor<4x8xf32>) outs(%e1 : tensor<4x8xf32>) {
  ^bb0(%in: f32, %out: f32):
    %y = arith.mulf %in, %in : f32
    linalg.yield %y : f32
  } -> tensor<4x8xf32>
  return %r, %a : tensor<4x8xf32>, tensor<4x8xf32>
}

// -----

#id = affine_map<(d0, d1) -> (d0, d1)>

// Read as an accumulator (an init): left as it is.
// CHECK-LABEL: func.func @accumulated
// CHECK-NOT: tensor<4x8xf16>
func.func @accumulated(%x: tensor<4x8xf32>, %y: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %e = tensor.empty() : tensor<4x8xf32>
  %r = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<4x8xf32>) outs(%e : tensor<4x8xf32>) {
  ^bb0(%in: f32, %out: f32):
    %t = arith.truncf %in : f32 to bf16
    %w = arith.extf %t : bf16 to f32
    linalg.yield %w : f32
  } -> tensor<4x8xf32>
  %a = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]} ins(%y : tensor<4x8xf32>) outs(%r : tensor<4x8xf32>) {
  ^bb0(%in: f32, %out: f32):
    %s = arith.addf %in, %out : f32
    linalg.yield %s : f32
  } -> tensor<4x8xf32>
  return %a : tensor<4x8xf32>
}

// -----

#id = affine_map<(d0, d1) -> (d0, d1)>
#id1 = affine_map<(d0) -> (d0)>
#row = affine_map<(d0, d1) -> (d1)>

// Through a collapse_shape into a column sum (a reduction), f16 rounding
// (no bitcast); the other result of the producer is untouched.
// CHECK-LABEL: func.func @reshaped_reduction
// CHECK: %[[P:.*]]:2 = linalg.generic
// CHECK: } -> (tensor<2x2x8xf16>, tensor<2x2x8xf32>)
// CHECK: %[[C:.*]] = tensor.collapse_shape %[[P]]#0 {{\[\[}}0, 1], [2]] : tensor<2x2x8xf16> into tensor<4x8xf16>
// CHECK: linalg.generic {{.*}} iterator_types = ["reduction", "parallel"]{{.*}} ins(%[[C]] : tensor<4x8xf16>)
// CHECK: ^bb0(%[[IN:.*]]: f16, %[[ACC:.*]]: f32):
// CHECK-NEXT: %[[X:.*]] = arith.extf %[[IN]] : f16 to f32
// CHECK-NEXT: arith.addf %[[ACC]], %[[X]]
// CHECK: return %{{.*}}, %[[P]]#1
func.func @reshaped_reduction(%x: tensor<2x2x8xf32>) -> (tensor<8xf32>, tensor<2x2x8xf32>) {
  %e = tensor.empty() : tensor<2x2x8xf32>
  %e2 = tensor.empty() : tensor<2x2x8xf32>
  %r:2 = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%x : tensor<2x2x8xf32>) outs(%e, %e2 : tensor<2x2x8xf32>, tensor<2x2x8xf32>) {
  ^bb0(%in: f32, %out: f32, %out2: f32):
    %t = arith.truncf %in : f32 to f16
    %w = arith.extf %t : f16 to f32
    %n = arith.negf %in : f32
    linalg.yield %w, %n : f32, f32
  } -> (tensor<2x2x8xf32>, tensor<2x2x8xf32>)
  %c = tensor.collapse_shape %r#0 [[0, 1], [2]] : tensor<2x2x8xf32> into tensor<4x8xf32>
  %z = arith.constant 0.0 : f32
  %e3 = tensor.empty() : tensor<8xf32>
  %f = linalg.fill ins(%z : f32) outs(%e3 : tensor<8xf32>) -> tensor<8xf32>
  %s = linalg.generic {indexing_maps = [#id, #row], iterator_types = ["reduction", "parallel"]} ins(%c : tensor<4x8xf32>) outs(%f : tensor<8xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %a = arith.addf %acc, %in : f32
    linalg.yield %a : f32
  } -> tensor<8xf32>
  return %s, %r#1 : tensor<8xf32>, tensor<2x2x8xf32>
}

// -----

#id = affine_map<(d0, d1) -> (d0, d1)>

// A rounding and the tensor-core twin of the same input: once the rounding
// is narrowed they are the same op, and one is kept.
// CHECK-LABEL: func.func @twin
// CHECK: %[[H:.*]] = linalg.generic
// CHECK: arith.truncf
// CHECK-NOT: arith.truncf
// CHECK: return %{{.*}}, %[[H]]
func.func @twin(%x: tensor<4x8xf32>) -> (tensor<4x8xf32>, tensor<4x8xf16>) {
  %e = tensor.empty() : tensor<4x8xf32>
  %r = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<4x8xf32>) outs(%e : tensor<4x8xf32>) {
  ^bb0(%in: f32, %out: f32):
    %t = arith.truncf %in : f32 to bf16
    %w = arith.extf %t : bf16 to f32
    linalg.yield %w : f32
  } -> tensor<4x8xf32>
  %e1 = tensor.empty() : tensor<4x8xf16>
  %h = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]} ins(%x : tensor<4x8xf32>) outs(%e1 : tensor<4x8xf16>) {
  ^bb0(%in: f32, %out: f16):
    %t = arith.truncf %in : f32 to bf16
    %c = arith.bitcast %t : bf16 to f16
    linalg.yield %c : f16
  } -> tensor<4x8xf16>
  %e2 = tensor.empty() : tensor<4x8xf32>
  %a = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]} ins(%r : tensor<4x8xf32>) outs(%e2 : tensor<4x8xf32>) {
  ^bb0(%in: f32, %out: f32):
    %y = arith.mulf %in, %in : f32
    linalg.yield %y : f32
  } -> tensor<4x8xf32>
  return %a, %h : tensor<4x8xf32>, tensor<4x8xf16>
}
