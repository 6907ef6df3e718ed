// Attention and its gradient with `flash-attention` (the GPU pipeline):
// scf.forall loops over (batch * heads, row) with an online softmax, and no
// tensor of shape (queries, keys) anywhere: here 6x8x8 and 6x8x16.
// RUN: tessera-opt %s --convert-nn-to-linalg=flash-attention | FileCheck %s
// RUN: tessera-opt %s --convert-nn-to-linalg=flash-attention | FileCheck %s --check-prefix=NOTXS
// Without the option the gradient is the composed products (p is 6x8x8).
// RUN: tessera-opt %s --convert-nn-to-linalg | FileCheck %s --check-prefix=COMPOSED

// NOTXS-NOT: 8x8xf32
// NOTXS-NOT: 8x16xf32
// COMPOSED: tensor<2x3x8x8xf32>

// CHECK-LABEL: func.func @causal
// Forward: per query row, a loop over keys 0..i carrying (max, sum, acc).
// Its gradient is in the same function, so it also writes each row's
// log-sum-exp for the backward loops.
// CHECK: %[[O:.*]]:2 = scf.forall (%[[N:.*]], %[[I:.*]]) in (6, 8) shared_outs({{.*}}) -> (tensor<6x8x6xf32>, tensor<6x8xf32>)
// CHECK:   %[[Q:.*]] = vector.transfer_read %{{.*}}[%[[N]], %[[I]], %{{.*}}]{{.*}} : tensor<6x8x4xf32>, vector<4xf32>
// CHECK:   %[[HI:.*]] = arith.addi %[[I]], %c1
// CHECK:   scf.for %[[J:.*]] = %c0 to %[[HI]] step %c1 iter_args({{.*}}) -> (f32, f32, vector<6xf32>)
// CHECK:     vector.reduction <add>, %{{.*}} fastmath<reassoc> : vector<4xf32> into f32
// CHECK:     arith.maximumf
// CHECK:     math.exp
// CHECK:     math.exp
// CHECK:     vector.fma {{.*}} : vector<6xf32>
// CHECK:   arith.divf {{.*}} : vector<6xf32>
// CHECK:   math.log
// CHECK:   scf.forall.in_parallel
// CHECK-NEXT: tensor.parallel_insert_slice %{{.*}} into %{{.*}}[%[[N]], %[[I]], 0] [1, 1, 6] [1, 1, 1]
// CHECK-NEXT: tensor.parallel_insert_slice %{{.*}} into %{{.*}}[%[[N]], %[[I]]] [1, 1] [1, 1]
// Backward: dq, reading the forward's log-sum-exp (no pass of its own)
// and writing g.o ...
// CHECK: scf.forall ({{.*}}) in (6, 8) shared_outs({{.*}}) -> (tensor<6x8x4xf32>, tensor<6x8xf32>)
// CHECK-NOT: math.log
// CHECK:   tensor.extract %[[O]]#1
// ... then dk and dv together (heads of 4 and 6: four small rows), per
// key row, over queries j..7.
// CHECK: scf.forall (%{{.*}}, %[[J2:.*]]) in (6, 8) {{.*}} -> (tensor<6x8x4xf32>, tensor<6x8x6xf32>)
// CHECK:   scf.for %{{.*}} = %[[J2]] to %c8 {{.*}} -> (vector<4xf32>, vector<6xf32>)
func.func @causal(%q: tensor<2x3x8x4xf32>, %k: tensor<2x3x8x4xf32>, %v: tensor<2x3x8x6xf32>,
                  %g: tensor<2x3x8x6xf32>)
    -> (tensor<2x3x8x6xf32>, tensor<2x3x8x4xf32>, tensor<2x3x8x4xf32>, tensor<2x3x8x6xf32>) {
  %o = nn.attention %q, %k, %v {causal}
      : (tensor<2x3x8x4xf32>, tensor<2x3x8x4xf32>, tensor<2x3x8x6xf32>) -> tensor<2x3x8x6xf32>
  %dq, %dk, %dv = nn.attention_grad %g, %q, %k, %v, %o {causal}
      : (tensor<2x3x8x6xf32>, tensor<2x3x8x4xf32>, tensor<2x3x8x4xf32>, tensor<2x3x8x6xf32>,
         tensor<2x3x8x6xf32>) -> (tensor<2x3x8x4xf32>, tensor<2x3x8x4xf32>, tensor<2x3x8x6xf32>)
  return %o, %dq, %dk, %dv
      : tensor<2x3x8x6xf32>, tensor<2x3x8x4xf32>, tensor<2x3x8x4xf32>, tensor<2x3x8x6xf32>
}

// Keys and queries differ in number (8 and 16), no mask: every loop spans
// the other sequence.
// CHECK-LABEL: func.func @cross
// CHECK: scf.forall ({{.*}}) in (2, 8)
// CHECK:   scf.for %{{.*}} = %c0 to %c16
// CHECK: scf.forall ({{.*}}) in (2, 16)
// CHECK:   scf.for %{{.*}} = %c0 to %c8
func.func @cross(%q: tensor<2x8x4xf32>, %k: tensor<2x16x4xf32>, %v: tensor<2x16x4xf32>,
                 %g: tensor<2x8x4xf32>) -> (tensor<2x8x4xf32>, tensor<2x16x4xf32>) {
  %o = nn.attention %q, %k, %v {scale = 0.25 : f64}
      : (tensor<2x8x4xf32>, tensor<2x16x4xf32>, tensor<2x16x4xf32>) -> tensor<2x8x4xf32>
  %dq, %dk, %dv = nn.attention_grad %g, %q, %k, %v, %o {scale = 0.25 : f64}
      : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x16x4xf32>, tensor<2x16x4xf32>,
         tensor<2x8x4xf32>) -> (tensor<2x8x4xf32>, tensor<2x16x4xf32>, tensor<2x16x4xf32>)
  return %o, %dk : tensor<2x8x4xf32>, tensor<2x16x4xf32>
}

// A gradient whose forward pass is elsewhere (its `out` an argument)
// computes each row's log-sum-exp in a pass of its own.
// CHECK-LABEL: func.func @grad_only
// CHECK: scf.forall ({{.*}}) in (2, 8) shared_outs({{.*}}) -> (tensor<2x8x4xf32>, tensor<2x8xf32>, tensor<2x8xf32>)
// CHECK:   scf.for {{.*}} -> (f32, f32)
// CHECK:   math.log
func.func @grad_only(%q: tensor<2x8x4xf32>, %k: tensor<2x16x4xf32>, %v: tensor<2x16x4xf32>,
                     %o: tensor<2x8x4xf32>, %g: tensor<2x8x4xf32>) -> tensor<2x8x4xf32> {
  %dq, %dk, %dv = nn.attention_grad %g, %q, %k, %v, %o {scale = 0.25 : f64}
      : (tensor<2x8x4xf32>, tensor<2x8x4xf32>, tensor<2x16x4xf32>, tensor<2x16x4xf32>,
         tensor<2x8x4xf32>) -> (tensor<2x8x4xf32>, tensor<2x16x4xf32>, tensor<2x16x4xf32>)
  return %dq : tensor<2x8x4xf32>
}

// Heads of 40: dv and dk in two loops (at most three rows of 40 each).
// CHECK-LABEL: func.func @wide
// CHECK: scf.forall ({{.*}}) in (1, 5) {{.*}} -> (tensor<1x5x40xf32>, tensor<1x5xf32>)
// CHECK: scf.forall ({{.*}}) in (1, 5) {{.*}} -> (tensor<1x5x40xf32>, tensor<1x5xf32>)
// CHECK: scf.forall ({{.*}}) in (1, 5) {{.*}} -> (tensor<1x5x40xf32>)
// CHECK:   scf.for {{.*}} -> (vector<40xf32>)
// CHECK: scf.forall ({{.*}}) in (1, 5) {{.*}} -> (tensor<1x5x40xf32>)
// CHECK:   scf.for {{.*}} -> (vector<40xf32>)
func.func @wide(%q: tensor<1x5x40xf32>, %k: tensor<1x5x40xf32>, %v: tensor<1x5x40xf32>,
                %g: tensor<1x5x40xf32>) -> (tensor<1x5x40xf32>, tensor<1x5x40xf32>, tensor<1x5x40xf32>) {
  %o = nn.attention %q, %k, %v {causal}
      : (tensor<1x5x40xf32>, tensor<1x5x40xf32>, tensor<1x5x40xf32>) -> tensor<1x5x40xf32>
  %dq, %dk, %dv = nn.attention_grad %g, %q, %k, %v, %o {causal}
      : (tensor<1x5x40xf32>, tensor<1x5x40xf32>, tensor<1x5x40xf32>, tensor<1x5x40xf32>,
         tensor<1x5x40xf32>) -> (tensor<1x5x40xf32>, tensor<1x5x40xf32>, tensor<1x5x40xf32>)
  return %dq, %dk, %dv : tensor<1x5x40xf32>, tensor<1x5x40xf32>, tensor<1x5x40xf32>
}

// Heads of 64 (after the forward pass): the query rows' delta in a loop of
// their own, then dq and dk each by 2 threads per row (the forall's third
// dimension), each holding 32 columns of the accumulator and reading its
// part of k_j (q_i) apart from the whole row for the dot products; dv in
// one thread per row.
// CHECK-LABEL: func.func @split64
// CHECK: scf.forall ({{.*}}) in (1, 5) {{.*}} -> (tensor<1x5x64xf32>, tensor<1x5xf32>)
// CHECK: scf.forall ({{.*}}) in (1, 5) {{.*}} -> (tensor<1x5xf32>)
// CHECK: scf.forall (%{{.*}}, %{{.*}}, %[[C:.*]]) in (1, 5, 2) {{.*}} -> (tensor<1x5x64xf32>)
// CHECK:   scf.for {{.*}} -> (vector<32xf32>)
// CHECK:     vector.transfer_read {{.*}} : tensor<1x5x64xf32>, vector<64xf32>
// CHECK:     %[[OFF:.*]] = arith.muli %[[C]], %c32
// CHECK:     vector.transfer_read %{{.*}}[%{{.*}}, %{{.*}}, %[[OFF]]], {{.*}} : tensor<1x5x64xf32>, vector<32xf32>
// CHECK: scf.forall ({{.*}}) in (1, 5) {{.*}} -> (tensor<1x5x64xf32>)
// CHECK:   scf.for {{.*}} -> (vector<64xf32>)
// CHECK: scf.forall ({{.*}}) in (1, 5, 2) {{.*}} -> (tensor<1x5x64xf32>)
// CHECK:   scf.for {{.*}} -> (vector<32xf32>)
func.func @split64(%q: tensor<1x5x64xf32>, %k: tensor<1x5x64xf32>, %v: tensor<1x5x64xf32>,
                   %g: tensor<1x5x64xf32>) -> (tensor<1x5x64xf32>, tensor<1x5x64xf32>, tensor<1x5x64xf32>) {
  %o = nn.attention %q, %k, %v {causal}
      : (tensor<1x5x64xf32>, tensor<1x5x64xf32>, tensor<1x5x64xf32>) -> tensor<1x5x64xf32>
  %dq, %dk, %dv = nn.attention_grad %g, %q, %k, %v, %o {causal}
      : (tensor<1x5x64xf32>, tensor<1x5x64xf32>, tensor<1x5x64xf32>, tensor<1x5x64xf32>,
         tensor<1x5x64xf32>) -> (tensor<1x5x64xf32>, tensor<1x5x64xf32>, tensor<1x5x64xf32>)
  return %dq, %dk, %dv : tensor<1x5x64xf32>, tensor<1x5x64xf32>, tensor<1x5x64xf32>
}
