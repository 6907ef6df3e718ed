// A warp-per-row kernel runs the element-wise consumer of its rows in
// place of storing them: the consumer moves up into the kernel, its output
// allocation before it, and the rows' buffer is gone. Rows read twice:
// the first reader runs in the kernel, which still stores the rows for the
// second.
// RUN: tessera-opt %s --pass-pipeline='builtin.module(convert-nn-to-linalg{row-kernels warp-rows},canonicalize,one-shot-bufferize{bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map},tessera-gpu-tensor-core-matmuls{wgmma})' | FileCheck %s

// CHECK-LABEL: func.func @norm_relu
// CHECK-NOT: memref.alloc() {{.*}}memref<32x64xf32>
// CHECK: %[[OUT:.*]] = memref.alloc() {{.*}} : memref<2x16x64xf32>
// CHECK: gpu.launch
// CHECK: gpu.shuffle
// CHECK: math.rsqrt
// CHECK: scf.for
// CHECK-NOT: vector.transfer_write
// CHECK: arith.maximumf
// CHECK: arith.maximumf
// CHECK: arith.maximumf
// CHECK: arith.maximumf
// CHECK: vector.store %{{.*}}, %[[OUT]][%{{.*}}, %{{.*}}, %{{.*}}] {alignment = 16 : i64} : memref<2x16x64xf32>, vector<4xf32>
// CHECK: gpu.terminator
// CHECK-NOT: linalg.generic
// CHECK: return %[[OUT]]
func.func @norm_relu(%x: tensor<2x16x64xf32>, %w: tensor<64xf32>, %b: tensor<64xf32>) -> tensor<2x16x64xf32> {
  %y = nn.layer_norm %x, %w, %b {eps = 1.0e-05 : f64} : (tensor<2x16x64xf32>, tensor<64xf32>, tensor<64xf32>) -> tensor<2x16x64xf32>
  %r = nn.relu %y : tensor<2x16x64xf32>
  return %r : tensor<2x16x64xf32>
}

// CHECK-LABEL: func.func @norm_twice
// CHECK: %[[ROWS:.*]] = memref.alloc() : memref<32x64xf32>
// CHECK: %[[GELU:.*]] = memref.alloc() {{.*}} : memref<2x16x64xf32>
// CHECK: gpu.launch
// CHECK: vector.transfer_write %{{.*}}, %[[ROWS]]
// CHECK: vector.store %{{.*}}, %[[GELU]]
// CHECK: gpu.terminator
// CHECK: %[[Y:.*]] = memref.expand_shape %[[ROWS]]
// CHECK: linalg.generic {{.*}} ins(%[[Y]] : memref<2x16x64xf32>)
// CHECK: arith.maximumf
// CHECK-NOT: linalg.generic
// CHECK: return
func.func @norm_twice(%x: tensor<2x16x64xf32>, %w: tensor<64xf32>, %b: tensor<64xf32>) -> (tensor<2x16x64xf32>, tensor<2x16x64xf32>) {
  %y = nn.layer_norm %x, %w, %b {eps = 1.0e-05 : f64} : (tensor<2x16x64xf32>, tensor<64xf32>, tensor<64xf32>) -> tensor<2x16x64xf32>
  %r = nn.relu %y : tensor<2x16x64xf32>
  %g = nn.gelu %y : tensor<2x16x64xf32>
  return %r, %g : tensor<2x16x64xf32>, tensor<2x16x64xf32>
}

// The rows' reader (a residual add) is read in turn by an element-wise op
// (here a relu; in GPT-2, the bf16 rounding of the residual gradient), and
// its sum is returned too: the reader takes in the relu as a second result,
// and both run in the kernel's epilogue.
// CHECK-LABEL: func.func @norm_add_relu
// CHECK: %[[SUM:.*]] = memref.alloc() {{.*}} : memref<2x16x64xf32>
// CHECK: %[[RELU:.*]] = memref.alloc() {{.*}} : memref<2x16x64xf32>
// CHECK: gpu.launch
// CHECK: arith.addf
// CHECK: arith.maximumf
// CHECK: vector.store %{{.*}}, %[[SUM]]
// CHECK: vector.store %{{.*}}, %[[RELU]]
// CHECK: gpu.terminator
// CHECK-NOT: linalg.generic
// CHECK: return
func.func @norm_add_relu(%x: tensor<2x16x64xf32>, %w: tensor<64xf32>, %b: tensor<64xf32>, %res: tensor<2x16x64xf32>) -> (tensor<2x16x64xf32>, tensor<2x16x64xf32>) {
  %y = nn.layer_norm %x, %w, %b {eps = 1.0e-05 : f64} : (tensor<2x16x64xf32>, tensor<64xf32>, tensor<64xf32>) -> tensor<2x16x64xf32>
  %s = nn.add %y, %res : (tensor<2x16x64xf32>, tensor<2x16x64xf32>) -> tensor<2x16x64xf32>
  %r = nn.relu %s : tensor<2x16x64xf32>
  return %s, %r : tensor<2x16x64xf32>, tensor<2x16x64xf32>
}
