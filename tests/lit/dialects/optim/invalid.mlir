// RUN: tessera-opt %s -split-input-file -verify-diagnostics

func.func @rank(%g: tensor<2x5xf32>) {
  // expected-error @+1 {{expects flat (1-D) buffers, got 'tensor<2x5xf32>'}}
  %c, %n = optim.clip_by_global_norm %g {max_norm = 1.0 : f64} : (tensor<2x5xf32>) -> (tensor<2x5xf32>, tensor<f32>)
  return
}

// -----

func.func @max_norm(%g: tensor<5xf32>) {
  // expected-error @+1 {{max_norm must be positive}}
  %c, %n = optim.clip_by_global_norm %g {max_norm = 0.0 : f64} : (tensor<5xf32>) -> (tensor<5xf32>, tensor<f32>)
  return
}

// -----

func.func @hyper(%p: tensor<10xf32>, %h: tensor<3xf32>) {
  // expected-error @+1 {{expects 7 hyper-parameters, got 'tensor<3xf32>'}}
  %p2, %m2, %v2 = optim.adamw_step %p, %p, %p, %p, %h {decay_end = 6 : i64}
      : (tensor<10xf32>, tensor<10xf32>, tensor<10xf32>, tensor<10xf32>, tensor<3xf32>)
      -> (tensor<10xf32>, tensor<10xf32>, tensor<10xf32>)
  return
}

// -----

func.func @sizes(%p: tensor<10xf32>, %g: tensor<9xf32>, %h: tensor<3xf32>) {
  // expected-error @+1 {{expects buffers of one type, got 'tensor<10xf32>' and 'tensor<9xf32>'}}
  %p2, %b2 = optim.sgd_step %p, %g, %p, %h {decay_end = 6 : i64}
      : (tensor<10xf32>, tensor<9xf32>, tensor<10xf32>, tensor<3xf32>) -> (tensor<10xf32>, tensor<10xf32>)
  return
}

// -----

func.func @decay(%p: tensor<10xf32>, %h: tensor<3xf32>) {
  // expected-error @+1 {{decay_end 11 is outside [0, 10]}}
  %p2, %b2 = optim.sgd_step %p, %p, %p, %h {decay_end = 11 : i64}
      : (tensor<10xf32>, tensor<10xf32>, tensor<10xf32>, tensor<3xf32>) -> (tensor<10xf32>, tensor<10xf32>)
  return
}
