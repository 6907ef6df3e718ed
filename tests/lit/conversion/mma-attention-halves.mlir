// Tensor-core attention reads q, k and v as bf16 bits where their values
// are exact in bf16. When they are heads split off one projection
// (slice, reshape, transpose to [B, H, T, D]), the kernels read the
// projection's bf16 twin in place, [B, T, H, D] at any strides: no
// head-major copies. The gradient kernels write dq, dk and dv the same
// way, into the projection gradient's bf16 twin.
// RUN: tessera-opt %s --pass-pipeline="builtin.module(convert-nn-to-linalg{flash-attention mma-attention},tessera-gpu-select-tensor-cores,canonicalize)" | FileCheck %s

// CHECK-LABEL: func.func @qkv
// CHECK-NOT: linalg.transpose
// CHECK: %[[H:.*]] = linalg.generic {{.*}} ins(%arg0 : tensor<2x64x96xf32>) outs(%{{.*}} : tensor<2x64x96xf16>)
// CHECK: arith.truncf %{{.*}} : f32 to bf16
// CHECK: %[[Q:.*]] = tensor.extract_slice %[[H]][0, 0, 0] [2, 64, 32] [1, 1, 1]
// CHECK: %[[K:.*]] = tensor.extract_slice %[[H]][0, 0, 32] [2, 64, 32] [1, 1, 1]
// CHECK: %[[V:.*]] = tensor.extract_slice %[[H]][0, 0, 64] [2, 64, 32] [1, 1, 1]
// CHECK: %[[QH:.*]] = tensor.reshape %[[Q]]
// CHECK: %[[KH:.*]] = tensor.reshape %[[K]]
// CHECK: %[[VH:.*]] = tensor.reshape %[[V]]
// CHECK: %[[QB:.*]] = bufferization.to_buffer %[[QH]] read_only : tensor<2x64x2x16xf16> to memref<2x64x2x16xf16, strided<[?, ?, ?, ?], offset: ?>>
// CHECK: %[[KB:.*]] = bufferization.to_buffer %[[KH]] read_only
// CHECK: %[[VB:.*]] = bufferization.to_buffer %[[VH]] read_only
// CHECK: gpu.launch
// CHECK: vector.load %[[QB]][%{{.*}}] : memref<2x64x2x16xf16, strided<[?, ?, ?, ?], offset: ?>>, vector<1xf16>
// CHECK: vector.load %[[KB]]
// CHECK: vector.load %[[VB]]
// CHECK: tessera.mma_attention = {causal = true, format = "bf16", kernel = "forward"
func.func @qkv(%x: tensor<2x64x96xf32>) -> tensor<2x2x64x16xf32> {
  %r = precision.round %x {format = "bf16"} : tensor<2x64x96xf32>
  %q0 = nn.slice %r {start = array<i64: 0, 0, 0>, limit = array<i64: 2, 64, 32>, stride = array<i64: 1, 1, 1>} : (tensor<2x64x96xf32>) -> tensor<2x64x32xf32>
  %k0 = nn.slice %r {start = array<i64: 0, 0, 32>, limit = array<i64: 2, 64, 64>, stride = array<i64: 1, 1, 1>} : (tensor<2x64x96xf32>) -> tensor<2x64x32xf32>
  %v0 = nn.slice %r {start = array<i64: 0, 0, 64>, limit = array<i64: 2, 64, 96>, stride = array<i64: 1, 1, 1>} : (tensor<2x64x96xf32>) -> tensor<2x64x32xf32>
  %q1 = nn.reshape %q0 : (tensor<2x64x32xf32>) -> tensor<2x64x2x16xf32>
  %k1 = nn.reshape %k0 : (tensor<2x64x32xf32>) -> tensor<2x64x2x16xf32>
  %v1 = nn.reshape %v0 : (tensor<2x64x32xf32>) -> tensor<2x64x2x16xf32>
  %q2 = nn.transpose %q1 {dim0 = 1 : i64, dim1 = 2 : i64} : (tensor<2x64x2x16xf32>) -> tensor<2x2x64x16xf32>
  %k2 = nn.transpose %k1 {dim0 = 1 : i64, dim1 = 2 : i64} : (tensor<2x64x2x16xf32>) -> tensor<2x2x64x16xf32>
  %v2 = nn.transpose %v1 {dim0 = 1 : i64, dim1 = 2 : i64} : (tensor<2x64x2x16xf32>) -> tensor<2x2x64x16xf32>
  %q = precision.round %q2 {format = "bf16"} : tensor<2x2x64x16xf32>
  %k = precision.round %k2 {format = "bf16"} : tensor<2x2x64x16xf32>
  %v = precision.round %v2 {format = "bf16"} : tensor<2x2x64x16xf32>
  %o = nn.attention %q, %k, %v {causal} : (tensor<2x2x64x16xf32>, tensor<2x2x64x16xf32>, tensor<2x2x64x16xf32>) -> tensor<2x2x64x16xf32>
  return %o : tensor<2x2x64x16xf32>
}

// Rounded inputs already head-major: their twins, flattened as the f32
// operands were.
// CHECK-LABEL: func.func @head_major
// CHECK: %[[H:.*]] = linalg.generic {{.*}} ins(%arg0 : tensor<2x2x64x16xf32>) outs(%{{.*}} : tensor<2x2x64x16xf16>)
// CHECK: %[[C:.*]] = tensor.collapse_shape %[[H]] {{\[\[}}0, 1], [2], [3]] : tensor<2x2x64x16xf16> into tensor<4x64x16xf16>
// CHECK: %[[B:.*]] = bufferization.to_buffer %[[C]] read_only : tensor<4x64x16xf16> to memref<4x64x16xf16>
// CHECK: gpu.launch
// CHECK: vector.load %[[B]][%{{.*}}] : memref<4x64x16xf16>, vector<1xf16>
func.func @head_major(%a: tensor<2x2x64x16xf32>) -> tensor<2x2x64x16xf32> {
  %q = precision.round %a {format = "bf16"} : tensor<2x2x64x16xf32>
  %o = nn.attention %q, %q, %q : (tensor<2x2x64x16xf32>, tensor<2x2x64x16xf32>, tensor<2x2x64x16xf32>) -> tensor<2x2x64x16xf32>
  return %o : tensor<2x2x64x16xf32>
}

// The gradients: dq, dk and dv are rounded, moved back to [B, T, H, D]
// and gathered into the projection's gradient. The kernels store them
// rounded into [B, T, H, D] views of one bf16 buffer, which is the
// gradient's twin; nothing is transposed or inserted afterwards.
// CHECK-LABEL: func.func @qkv_grad
// CHECK: %[[G:.*]] = memref.alloc() : memref<2x64x96xf16>
// CHECK: %[[SQ:.*]] = memref.subview %[[G]][0, 0, 0] [2, 64, 32] [1, 1, 1]
// CHECK: %[[Q:.*]] = memref.expand_shape %[[SQ]] {{\[\[}}0], [1], [2, 3]] output_shape [2, 64, 2, 16]
// CHECK: %[[SK:.*]] = memref.subview %[[G]][0, 0, 32] [2, 64, 32] [1, 1, 1]
// CHECK: %[[K:.*]] = memref.expand_shape %[[SK]]
// CHECK: %[[SV:.*]] = memref.subview %[[G]][0, 0, 64] [2, 64, 32] [1, 1, 1]
// CHECK: %[[V:.*]] = memref.expand_shape %[[SV]]
// CHECK: vector.store %{{.*}}, %[[Q]][{{.*}}] : {{.*}}, vector<1xf16>
// CHECK: kernel = "grad_q"
// CHECK: vector.store %{{.*}}, %[[K]]
// CHECK: vector.store %{{.*}}, %[[V]]
// CHECK: kernel = "grad_kv"
// CHECK: %[[T:.*]] = bufferization.to_tensor %[[G]] restrict writable : memref<2x64x96xf16> to tensor<2x64x96xf16>
// CHECK-NOT: tensor.insert_slice
// CHECK-NOT: linalg.transpose
// CHECK: linalg.generic {{.*}} ins(%[[T]] : tensor<2x64x96xf16>) outs(%{{.*}} : tensor<2x64x96xf32>)
// CHECK: return
func.func @qkv_grad(%x: tensor<2x64x96xf32>, %g: tensor<2x2x64x16xf32>) -> tensor<2x64x96xf32> {
  %r = precision.round %x {format = "bf16"} : tensor<2x64x96xf32>
  %q0 = nn.slice %r {start = array<i64: 0, 0, 0>, limit = array<i64: 2, 64, 32>, stride = array<i64: 1, 1, 1>} : (tensor<2x64x96xf32>) -> tensor<2x64x32xf32>
  %k0 = nn.slice %r {start = array<i64: 0, 0, 32>, limit = array<i64: 2, 64, 64>, stride = array<i64: 1, 1, 1>} : (tensor<2x64x96xf32>) -> tensor<2x64x32xf32>
  %v0 = nn.slice %r {start = array<i64: 0, 0, 64>, limit = array<i64: 2, 64, 96>, stride = array<i64: 1, 1, 1>} : (tensor<2x64x96xf32>) -> tensor<2x64x32xf32>
  %q1 = nn.reshape %q0 : (tensor<2x64x32xf32>) -> tensor<2x64x2x16xf32>
  %k1 = nn.reshape %k0 : (tensor<2x64x32xf32>) -> tensor<2x64x2x16xf32>
  %v1 = nn.reshape %v0 : (tensor<2x64x32xf32>) -> tensor<2x64x2x16xf32>
  %q2 = nn.transpose %q1 {dim0 = 1 : i64, dim1 = 2 : i64} : (tensor<2x64x2x16xf32>) -> tensor<2x2x64x16xf32>
  %k2 = nn.transpose %k1 {dim0 = 1 : i64, dim1 = 2 : i64} : (tensor<2x64x2x16xf32>) -> tensor<2x2x64x16xf32>
  %v2 = nn.transpose %v1 {dim0 = 1 : i64, dim1 = 2 : i64} : (tensor<2x64x2x16xf32>) -> tensor<2x2x64x16xf32>
  %q = precision.round %q2 {format = "bf16"} : tensor<2x2x64x16xf32>
  %k = precision.round %k2 {format = "bf16"} : tensor<2x2x64x16xf32>
  %v = precision.round %v2 {format = "bf16"} : tensor<2x2x64x16xf32>
  %o = nn.attention %q, %k, %v {causal} : (tensor<2x2x64x16xf32>, tensor<2x2x64x16xf32>, tensor<2x2x64x16xf32>) -> tensor<2x2x64x16xf32>
  %gr = precision.round %g {format = "bf16"} : tensor<2x2x64x16xf32>
  %dq, %dk, %dv = nn.attention_grad %gr, %q, %k, %v, %o {causal} : (tensor<2x2x64x16xf32>, tensor<2x2x64x16xf32>, tensor<2x2x64x16xf32>, tensor<2x2x64x16xf32>, tensor<2x2x64x16xf32>) -> (tensor<2x2x64x16xf32>, tensor<2x2x64x16xf32>, tensor<2x2x64x16xf32>)
  %rq = precision.round %dq {format = "bf16"} : tensor<2x2x64x16xf32>
  %rk = precision.round %dk {format = "bf16"} : tensor<2x2x64x16xf32>
  %rv = precision.round %dv {format = "bf16"} : tensor<2x2x64x16xf32>
  %tq = nn.transpose %rq {dim0 = 1 : i64, dim1 = 2 : i64} : (tensor<2x2x64x16xf32>) -> tensor<2x64x2x16xf32>
  %tk = nn.transpose %rk {dim0 = 1 : i64, dim1 = 2 : i64} : (tensor<2x2x64x16xf32>) -> tensor<2x64x2x16xf32>
  %tv = nn.transpose %rv {dim0 = 1 : i64, dim1 = 2 : i64} : (tensor<2x2x64x16xf32>) -> tensor<2x64x2x16xf32>
  %mq = nn.reshape %tq : (tensor<2x64x2x16xf32>) -> tensor<2x64x32xf32>
  %mk = nn.reshape %tk : (tensor<2x64x2x16xf32>) -> tensor<2x64x32xf32>
  %mv = nn.reshape %tv : (tensor<2x64x2x16xf32>) -> tensor<2x64x32xf32>
  %sv = nn.slice_grad %mv {start = array<i64: 0, 0, 64>, limit = array<i64: 2, 64, 96>, stride = array<i64: 1, 1, 1>} : (tensor<2x64x32xf32>) -> tensor<2x64x96xf32>
  %sk = nn.slice_grad %mk {start = array<i64: 0, 0, 32>, limit = array<i64: 2, 64, 64>, stride = array<i64: 1, 1, 1>} : (tensor<2x64x32xf32>) -> tensor<2x64x96xf32>
  %a = nn.add %sv, %sk : (tensor<2x64x96xf32>, tensor<2x64x96xf32>) -> tensor<2x64x96xf32>
  %sq = nn.slice_grad %mq {start = array<i64: 0, 0, 0>, limit = array<i64: 2, 64, 32>, stride = array<i64: 1, 1, 1>} : (tensor<2x64x32xf32>) -> tensor<2x64x96xf32>
  %s = nn.add %a, %sq : (tensor<2x64x96xf32>, tensor<2x64x96xf32>) -> tensor<2x64x96xf32>
  %rs = precision.round %s {format = "bf16"} : tensor<2x64x96xf32>
  return %rs : tensor<2x64x96xf32>
}

// The output, rounded, moved back to [B, T, H, D] and merged: the forward
// kernel stores it rounded into a [B, T, H, D] view of a bf16 buffer of
// the merged shape, which is the merged tensor's twin, and the dq kernel
// reads O from that view (for D = rowsum(dO O)). No f32 O, no transpose.
// CHECK-LABEL: func.func @output_in_place
// CHECK: %[[O:.*]] = memref.alloc() : memref<2x64x32xf16>
// CHECK: %[[OV:.*]] = memref.expand_shape %[[O]] {{\[\[}}0], [1], [2, 3]] output_shape [2, 64, 2, 16] : memref<2x64x32xf16> into memref<2x64x2x16xf16>
// CHECK-NOT: memref.alloc() : memref<4x64x16xf32>
// CHECK: vector.store %{{.*}}, %[[OV]][{{.*}}] : memref<2x64x2x16xf16>, vector<1xf16>
// CHECK: kernel = "forward"
// CHECK: %[[T:.*]] = bufferization.to_tensor %[[O]] restrict writable : memref<2x64x32xf16> to tensor<2x64x32xf16>
// CHECK: linalg.generic {{.*}} ins(%[[T]] : tensor<2x64x32xf16>) outs(%{{.*}} : tensor<2x64x32xf32>)
// CHECK: vector.load %[[OV]][{{.*}}] : memref<2x64x2x16xf16>, vector<1xf16>
// CHECK: kernel = "grad_q"
// CHECK-NOT: linalg.transpose
// CHECK: return
func.func @output_in_place(%a: tensor<2x2x64x16xf32>, %g: tensor<2x2x64x16xf32>) -> (tensor<2x64x32xf32>, tensor<2x2x64x16xf32>) {
  %q = precision.round %a {format = "bf16"} : tensor<2x2x64x16xf32>
  %o = nn.attention %q, %q, %q {causal} : (tensor<2x2x64x16xf32>, tensor<2x2x64x16xf32>, tensor<2x2x64x16xf32>) -> tensor<2x2x64x16xf32>
  %ro = precision.round %o {format = "bf16"} : tensor<2x2x64x16xf32>
  %t = nn.transpose %ro {dim0 = 1 : i64, dim1 = 2 : i64} : (tensor<2x2x64x16xf32>) -> tensor<2x64x2x16xf32>
  %m = nn.reshape %t : (tensor<2x64x2x16xf32>) -> tensor<2x64x32xf32>
  %gr = precision.round %g {format = "bf16"} : tensor<2x2x64x16xf32>
  %dq, %dk, %dv = nn.attention_grad %gr, %q, %q, %q, %o {causal} : (tensor<2x2x64x16xf32>, tensor<2x2x64x16xf32>, tensor<2x2x64x16xf32>, tensor<2x2x64x16xf32>, tensor<2x2x64x16xf32>) -> (tensor<2x2x64x16xf32>, tensor<2x2x64x16xf32>, tensor<2x2x64x16xf32>)
  return %m, %dq : tensor<2x64x32xf32>, tensor<2x2x64x16xf32>
}
