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
