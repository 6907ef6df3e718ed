// RUN: tessera-opt %s --convert-precision-to-linalg | FileCheck %s

// CHECK-LABEL: func.func @round
// CHECK: linalg.generic
// CHECK: arith.truncf %{{.*}} : f32 to bf16
// CHECK: arith.extf %{{.*}} : bf16 to f32
// CHECK: arith.truncf %{{.*}} : f32 to f16
func.func @round(%x: tensor<4x8xf32>) -> tensor<4x8xf32> {
  %0 = precision.round %x {format = "bf16"} : tensor<4x8xf32>
  %1 = precision.round %0 {format = "f16"} : tensor<4x8xf32>
  return %1 : tensor<4x8xf32>
}

// unscale_and_check: one scaling pass, one reduction flagging |g| == inf or NaN.
// CHECK-LABEL: func.func @unscale
// CHECK: arith.divf
// CHECK: linalg.generic
// CHECK-SAME: iterator_types = ["parallel"]
// CHECK: linalg.generic
// CHECK-SAME: iterator_types = ["reduction"]
// CHECK: math.absf
// CHECK: arith.cmpf one
// CHECK: arith.maximumf
func.func @unscale(%g: tensor<10xf32>, %s: tensor<f32>) -> (tensor<10xf32>, tensor<f32>) {
  %0, %1 = precision.unscale_and_check %g, %s : (tensor<10xf32>, tensor<f32>) -> (tensor<10xf32>, tensor<f32>)
  return %0, %1 : tensor<10xf32>, tensor<f32>
}
