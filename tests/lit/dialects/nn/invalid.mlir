// Verifier errors of the nn dialect.
// RUN: tessera-opt %s -split-input-file -verify-diagnostics

func.func @linear_in(%x: tensor<8x12xf32>, %w: tensor<4x16xf32>) {
  // expected-error @+1 {{'nn.linear' op input 'tensor<8x12xf32>' does not match weight 'tensor<4x16xf32>': the last input dimension must equal in}}
  %y = nn.linear %x, %w : (tensor<8x12xf32>, tensor<4x16xf32>) -> tensor<8x4xf32>
  return
}

// -----

func.func @linear_result(%x: tensor<8x16xf32>, %w: tensor<4x16xf32>) {
  // expected-error @+1 {{result type 'tensor<8x5xf32>' does not match the inferred shape [8x4]}}
  %y = nn.linear %x, %w : (tensor<8x16xf32>, tensor<4x16xf32>) -> tensor<8x5xf32>
  return
}

// -----

func.func @broadcast(%a: tensor<3x4xf32>, %b: tensor<4x3xf32>) {
  // expected-error @+1 {{cannot broadcast 'tensor<3x4xf32>' and 'tensor<4x3xf32>'}}
  %y = nn.add %a, %b : (tensor<3x4xf32>, tensor<4x3xf32>) -> tensor<3x4xf32>
  return
}

// -----

func.func @matmul_k(%a: tensor<2x3xf32>, %b: tensor<4x5xf32>) {
  // expected-error @+1 {{contraction dimensions differ}}
  %y = nn.matmul %a, %b : (tensor<2x3xf32>, tensor<4x5xf32>) -> tensor<2x5xf32>
  return
}

// -----

func.func @embedding_float_idx(%w: tensor<10x4xf32>, %i: tensor<3xf32>) {
  // expected-error @+1 {{indices must be integers}}
  %y = nn.embedding %w, %i : (tensor<10x4xf32>, tensor<3xf32>) -> tensor<3x4xf32>
  return
}

// -----

func.func @norm_weight(%x: tensor<2x8xf32>, %w: tensor<4xf32>) {
  // expected-error @+1 {{weight 'tensor<4xf32>' does not match the trailing dimensions of 'tensor<2x8xf32>'}}
  %y = nn.layer_norm %x, %w, %w {eps = 1.0e-05 : f64} : (tensor<2x8xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<2x8xf32>
  return
}

// -----

func.func @causal(%q: tensor<2x4x8xf32>, %k: tensor<2x6x8xf32>) {
  // expected-error @+1 {{causal attention needs as many queries as keys}}
  %y = nn.attention %q, %k, %k {causal} : (tensor<2x4x8xf32>, tensor<2x6x8xf32>, tensor<2x6x8xf32>) -> tensor<2x4x8xf32>
  return
}

// -----

func.func @ce(%l: tensor<4x10xf32>, %t: tensor<5xi32>) {
  // expected-error @+1 {{do not match: targets have the logits' shape without the class dimension}}
  %y = nn.cross_entropy %l, %t : (tensor<4x10xf32>, tensor<5xi32>) -> tensor<f32>
  return
}

// -----

func.func @reshape(%x: tensor<2x3xf32>) {
  // expected-error @+1 {{cannot reshape 'tensor<2x3xf32>' (6 elements) to 'tensor<4xf32>' (4 elements)}}
  %y = nn.reshape %x : (tensor<2x3xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @softmax_dim(%x: tensor<2x3xf32>) {
  // expected-error @+1 {{dim 2 is out of range for rank 2}}
  %y = nn.softmax %x {dim = 2 : i64} : tensor<2x3xf32>
  return
}

// -----

func.func @relu_int(%x: tensor<2xi32>) {
  // expected-error @+1 {{input must have a floating-point element type}}
  %y = nn.relu %x : tensor<2xi32>
  return
}

// -----

func.func @slice(%x: tensor<4xf32>) {
  // expected-error @+1 {{slice [2, 6) is out of range for dimension 0}}
  %y = nn.slice %x {start = array<i64: 2>, limit = array<i64: 6>, stride = array<i64: 1>} : (tensor<4xf32>) -> tensor<4xf32>
  return
}

// -----

func.func @concat(%a: tensor<2x3xf32>, %b: tensor<2x4xf32>) {
  // expected-error @+1 {{cannot concatenate}}
  %y = nn.concat %a, %b {dim = 0 : i64} : (tensor<2x3xf32>, tensor<2x4xf32>) -> tensor<4x3xf32>
  return
}
