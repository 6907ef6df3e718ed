// Round trip of every nn op through the parser and printer.
// RUN: tessera-opt %s | tessera-opt | FileCheck %s

// CHECK-LABEL: func @mlp
func.func @mlp(%x: tensor<8x784xf32>, %w: tensor<256x784xf32>, %b: tensor<256xf32>,
               %y: tensor<8xi32>, %w2: tensor<10x256xf32>) -> tensor<f32> {
  // CHECK: nn.linear %{{.*}}, %{{.*}}, %{{.*}} : (tensor<8x784xf32>, tensor<256x784xf32>, tensor<256xf32>) -> tensor<8x256xf32>
  %h = nn.linear %x, %w, %b : (tensor<8x784xf32>, tensor<256x784xf32>, tensor<256xf32>) -> tensor<8x256xf32>
  // CHECK: nn.relu %{{.*}} : tensor<8x256xf32>
  %r = nn.relu %h : tensor<8x256xf32>
  // CHECK: nn.linear %{{.*}}, %{{.*}} : (tensor<8x256xf32>, tensor<10x256xf32>) -> tensor<8x10xf32>
  %l = nn.linear %r, %w2 : (tensor<8x256xf32>, tensor<10x256xf32>) -> tensor<8x10xf32>
  // CHECK: nn.cross_entropy {{.*}} -> tensor<f32>
  %loss = nn.cross_entropy %l, %y : (tensor<8x10xf32>, tensor<8xi32>) -> tensor<f32>
  return %loss : tensor<f32>
}

// CHECK-LABEL: func @gpt_pieces
func.func @gpt_pieces(%idx: tensor<?x256xi32>, %wte: tensor<65x384xf32>,
                      %wpe: tensor<256x384xf32>, %g: tensor<384xf32>,
                      %q: tensor<?x6x256x64xf32>) -> tensor<?x256x65xf32> {
  %h = nn.embedding %wte, %idx : (tensor<65x384xf32>, tensor<?x256xi32>) -> tensor<?x256x384xf32>
  // CHECK: nn.arange : tensor<256xi32>
  %pos = nn.arange : tensor<256xi32>
  %p = nn.embedding %wpe, %pos : (tensor<256x384xf32>, tensor<256xi32>) -> tensor<256x384xf32>
  // CHECK: nn.add {{.*}} : (tensor<?x256x384xf32>, tensor<256x384xf32>) -> tensor<?x256x384xf32>
  %s = nn.add %h, %p : (tensor<?x256x384xf32>, tensor<256x384xf32>) -> tensor<?x256x384xf32>
  %n = nn.layer_norm %s, %g, %g {eps = 1.0e-05 : f64} : (tensor<?x256x384xf32>, tensor<384xf32>, tensor<384xf32>) -> tensor<?x256x384xf32>
  %n2 = nn.rms_norm %n, %g {eps = 1.0e-06 : f64} : (tensor<?x256x384xf32>, tensor<384xf32>) -> tensor<?x256x384xf32>
  %g1 = nn.gelu %n2 : tensor<?x256x384xf32>
  %g2 = nn.silu %g1 : tensor<?x256x384xf32>
  // CHECK: nn.attention {{.*}} {causal}
  %a = nn.attention %q, %q, %q {causal} : (tensor<?x6x256x64xf32>, tensor<?x6x256x64xf32>, tensor<?x6x256x64xf32>) -> tensor<?x6x256x64xf32>
  %t = nn.transpose %a {dim0 = 1 : i64, dim1 = 2 : i64} : (tensor<?x6x256x64xf32>) -> tensor<?x256x6x64xf32>
  %sm = nn.softmax %t {dim = -1 : i64} : tensor<?x256x6x64xf32>
  %m = nn.reduce_mean %sm {dim = 3 : i64, keepdim} : (tensor<?x256x6x64xf32>) -> tensor<?x256x6x1xf32>
  %mx = nn.reduce_max %m : (tensor<?x256x6x1xf32>) -> tensor<f32>
  %sum = nn.reduce_sum %sm {dim = -1 : i64} : (tensor<?x256x6x64xf32>) -> tensor<?x256x6xf32>
  %c = nn.concat %g2, %g2 {dim = 2 : i64} : (tensor<?x256x384xf32>, tensor<?x256x384xf32>) -> tensor<?x256x768xf32>
  %sl = nn.slice %wte {start = array<i64: 0, 0>, limit = array<i64: 65, 384>, stride = array<i64: 1, 2>} : (tensor<65x384xf32>) -> tensor<65x192xf32>
  %wt = nn.transpose %wte {dim0 = 0 : i64, dim1 = 1 : i64} : (tensor<65x384xf32>) -> tensor<384x65xf32>
  %d = nn.div %g2, %g : (tensor<?x256x384xf32>, tensor<384xf32>) -> tensor<?x256x384xf32>
  %u = nn.sub %d, %g2 : (tensor<?x256x384xf32>, tensor<?x256x384xf32>) -> tensor<?x256x384xf32>
  %v = nn.mul %u, %u : (tensor<?x256x384xf32>, tensor<?x256x384xf32>) -> tensor<?x256x384xf32>
  %rs = nn.reshape %v : (tensor<?x256x384xf32>) -> tensor<?x256x6x64xf32>
  // CHECK: nn.matmul {{.*}} : (tensor<?x256x384xf32>, tensor<384x65xf32>) -> tensor<?x256x65xf32>
  %logits = nn.matmul %v, %wt : (tensor<?x256x384xf32>, tensor<384x65xf32>) -> tensor<?x256x65xf32>
  return %logits : tensor<?x256x65xf32>
}
