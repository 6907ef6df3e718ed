// RUN: tessera-opt %s --convert-optim-to-linalg | FileCheck %s

// AdamW is one element-wise generic producing the three updated buffers;
// the decay factor and step size are computed once, in f64.
// CHECK-LABEL: func.func @adamw
// CHECK: arith.extf
// CHECK: arith.divf %{{.*}}, %{{.*}} : f64
// CHECK: linalg.generic
// CHECK-SAME: iterator_types = ["parallel"]
// CHECK: linalg.index 0
// CHECK: arith.cmpi slt
// CHECK: math.sqrt
// CHECK: linalg.yield %{{.*}}, %{{.*}}, %{{.*}} : f32, f32, f32
// CHECK-NOT: optim.
func.func @adamw(%p: tensor<10xf32>, %g: tensor<10xf32>, %m: tensor<10xf32>,
                 %v: tensor<10xf32>, %h: tensor<7xf32>) -> (tensor<10xf32>, tensor<10xf32>, tensor<10xf32>) {
  %p2, %m2, %v2 = optim.adamw_step %p, %g, %m, %v, %h {decay_end = 6 : i64}
      : (tensor<10xf32>, tensor<10xf32>, tensor<10xf32>, tensor<10xf32>, tensor<7xf32>)
      -> (tensor<10xf32>, tensor<10xf32>, tensor<10xf32>)
  return %p2, %m2, %v2 : tensor<10xf32>, tensor<10xf32>, tensor<10xf32>
}

// Clipping: a sum-of-squares reduction, then one scaling pass.
// CHECK-LABEL: func.func @clip
// CHECK: linalg.generic
// CHECK-SAME: iterator_types = ["reduction"]
// CHECK: math.sqrt
// CHECK: arith.minimumf
// CHECK: linalg.generic
// CHECK-SAME: iterator_types = ["parallel"]
func.func @clip(%g: tensor<10xf32>) -> (tensor<10xf32>, tensor<f32>) {
  %c, %n = optim.clip_by_global_norm %g {max_norm = 1.0 : f64} : (tensor<10xf32>) -> (tensor<10xf32>, tensor<f32>)
  return %c, %n : tensor<10xf32>, tensor<f32>
}
