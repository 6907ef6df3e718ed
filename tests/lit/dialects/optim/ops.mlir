// RUN: tessera-opt %s | tessera-opt | FileCheck %s

// CHECK-LABEL: func.func @steps
func.func @steps(%p: tensor<10xf32>, %g: tensor<10xf32>, %m: tensor<10xf32>,
                 %v: tensor<10xf32>, %h7: tensor<7xf32>, %h3: tensor<3xf32>)
    -> (tensor<10xf32>, tensor<f32>, tensor<f32>, tensor<10xf32>, tensor<10xf32>) {
  // CHECK: optim.clip_by_global_norm %{{.*}} {max_norm = 1.000000e+00 : f64}
  %c, %n = optim.clip_by_global_norm %g {max_norm = 1.0 : f64} : (tensor<10xf32>) -> (tensor<10xf32>, tensor<f32>)
  // CHECK: optim.global_norm
  %n2 = optim.global_norm %g : (tensor<10xf32>) -> tensor<f32>
  // CHECK: optim.adamw_step {{.*}} {decay_end = 6 : i64}
  %p2, %m2, %v2 = optim.adamw_step %p, %c, %m, %v, %h7 {decay_end = 6 : i64}
      : (tensor<10xf32>, tensor<10xf32>, tensor<10xf32>, tensor<10xf32>, tensor<7xf32>)
      -> (tensor<10xf32>, tensor<10xf32>, tensor<10xf32>)
  // CHECK: optim.sgd_step {{.*}} {decay_end = 10 : i64, nesterov}
  %p3, %b3 = optim.sgd_step %p2, %c, %m2, %h3 {decay_end = 10 : i64, nesterov}
      : (tensor<10xf32>, tensor<10xf32>, tensor<10xf32>, tensor<3xf32>) -> (tensor<10xf32>, tensor<10xf32>)
  return %p3, %n, %n2, %b3, %v2 : tensor<10xf32>, tensor<f32>, tensor<f32>, tensor<10xf32>, tensor<10xf32>
}
