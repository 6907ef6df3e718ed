// Norm gradients as warp kernels (warp-rows) sum their weight (and bias)
// gradients themselves: blocks of 4 warps, each taking 2 rows (unrolled), add each
// row's terms into the warp's row of [sums, 4, d] in shared memory (a
// lane only to its own chunks' columns); after one barrier, thread t adds
// column t of each sum over the 4 warps, in warp order, into the block's
// row of [blocks, d] partials, which one reduction sums. dy and x are
// read once, not again by separate sums over the rows.
// RUN: tessera-opt %s --pass-pipeline='builtin.module(convert-nn-to-linalg{row-kernels warp-rows},canonicalize,one-shot-bufferize{bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map},tessera-gpu-tensor-core-matmuls{wgmma})' | FileCheck %s

// 40 rows of 96: 5 blocks of 8 rows; lanes 24-31 have no chunk of 4.
// CHECK-LABEL: func.func @layer_norm_grad
// CHECK-DAG: %[[DX:.*]] = memref.alloc() : memref<40x96xf32>
// CHECK-DAG: %[[DW:.*]] = memref.alloc() : memref<5x96xf32>
// CHECK-DAG: %[[DB:.*]] = memref.alloc() : memref<5x96xf32>
// CHECK: gpu.launch blocks(%[[BLOCK:.*]], %{{.*}}, %{{.*}}) in (%{{.*}} = %c5, {{.*}} threads(%[[TID:.*]], %{{.*}}, %{{.*}}) in (%{{.*}} = %c128, {{.*}} workgroup(%[[SHARED:.*]] : memref<2x4x96xf32, #gpu.address_space<workgroup>>)
// CHECK: %[[WARP:.*]] = arith.divui %[[TID]], %c32
// CHECK: %[[LO:.*]] = arith.muli
// Each lane zeroes its chunks of its warp's row of both sums.
// CHECK: scf.for %[[C0:.*]] = %[[LO]] to %c96 step %c128
// CHECK:   vector.transfer_write %{{.*}}, %[[SHARED]][%{{.*}}, %[[WARP]], %[[C0]]]
// CHECK:   vector.transfer_write %{{.*}}, %[[SHARED]][%{{.*}}, %[[WARP]], %[[C0]]]
// The warp's first row, then (unrolled) its second, 4 rows further.
// CHECK: %[[ROW:.*]] = arith.addi
// CHECK:   %[[IN:.*]] = arith.cmpi ult, %[[ROW]], %c40
// CHECK:   scf.if %[[IN]]
// CHECK:     gpu.shuffle
// CHECK:     math.rsqrt
// CHECK:     scf.for %[[C:.*]] = %[[LO]] to %{{.*}} step %{{.*}} {
// CHECK:       %[[G:.*]] = vector.transfer_read %{{.*}}[%[[ROW]], %[[C]]]
// CHECK:       vector.transfer_write %{{.*}}, %[[DX]][%[[ROW]], %[[C]]]
// CHECK:       vector.transfer_read %[[SHARED]][%{{.*}}, %[[WARP]], %[[C]]]
// CHECK:       vector.transfer_write %{{.*}}, %[[SHARED]][%{{.*}}, %[[WARP]], %[[C]]]
// CHECK:       %[[SUMB:.*]] = vector.transfer_read %[[SHARED]][%{{.*}}, %[[WARP]], %[[C]]]
// CHECK:       %[[NEWB:.*]] = arith.addf %[[SUMB]], %[[G]] : vector<4xf32>
// CHECK:       vector.transfer_write %[[NEWB]], %[[SHARED]][%{{.*}}, %[[WARP]], %[[C]]]
// CHECK: %[[ROW1:.*]] = arith.addi %[[ROW]], %c4
// CHECK:   arith.cmpi ult, %[[ROW1]], %c40
// CHECK:   scf.if
// CHECK:       vector.transfer_write %{{.*}}, %[[DX]][%[[ROW1]], %{{.*}}]
// CHECK: gpu.barrier
// CHECK-NOT: gpu.barrier
// CHECK: scf.for %[[COL:.*]] = %[[TID]] to %c96{{.*}} step %c128
// CHECK-COUNT-4: memref.load %[[SHARED]]
// CHECK:   memref.store %{{.*}}, %[[DW]][%[[BLOCK]], %[[COL]]]
// CHECK-COUNT-4: memref.load %[[SHARED]]
// CHECK:   memref.store %{{.*}}, %[[DB]][%[[BLOCK]], %[[COL]]]
// CHECK: gpu.terminator
// CHECK: linalg.generic {{.*}} iterator_types = ["reduction", "parallel"]} ins(%[[DW]] : memref<5x96xf32>)
// CHECK: linalg.generic {{.*}} iterator_types = ["reduction", "parallel"]} ins(%[[DB]] : memref<5x96xf32>)
// CHECK-NOT: linalg.generic
// CHECK: return
func.func @layer_norm_grad(%g: tensor<2x20x96xf32>, %x: tensor<2x20x96xf32>, %w: tensor<96xf32>) -> (tensor<2x20x96xf32>, tensor<96xf32>, tensor<96xf32>) {
  %dx, %dw, %db = nn.layer_norm_grad %g, %x, %w {eps = 1.0e-05 : f64} : (tensor<2x20x96xf32>, tensor<2x20x96xf32>, tensor<96xf32>) -> (tensor<2x20x96xf32>, tensor<96xf32>, tensor<96xf32>)
  return %dx, %dw, %db : tensor<2x20x96xf32>, tensor<96xf32>, tensor<96xf32>
}

// RMS norm: one sum.
// CHECK-LABEL: func.func @rms_norm_grad
// CHECK: %[[DW:.*]] = memref.alloc() : memref<8x256xf32>
// CHECK: gpu.launch {{.*}} in (%{{.*}} = %c8, {{.*}} workgroup(%[[SHARED:.*]] : memref<1x4x256xf32, #gpu.address_space<workgroup>>)
// CHECK: gpu.barrier
// CHECK: memref.store %{{.*}}, %[[DW]]
// CHECK: gpu.terminator
// CHECK: linalg.generic {{.*}} ins(%[[DW]] : memref<8x256xf32>)
func.func @rms_norm_grad(%g: tensor<64x256xf32>, %x: tensor<64x256xf32>, %w: tensor<256xf32>) -> (tensor<64x256xf32>, tensor<256xf32>) {
  %dx, %dw = nn.rms_norm_grad %g, %x, %w {eps = 1.0e-06 : f64} : (tensor<64x256xf32>, tensor<64x256xf32>, tensor<256xf32>) -> (tensor<64x256xf32>, tensor<256xf32>)
  return %dx, %dw : tensor<64x256xf32>, tensor<256xf32>
}

// Layer norm's two sums of rows of 2048 would take 64 KB of shared memory,
// past the static limit of 48 KB: the kernel writes each row's mean and
// 1/sqrt(var + eps), and the weight and bias gradients are reductions over
// dy and x after it.
// CHECK-LABEL: func.func @wide_layer_norm_grad
// CHECK-NOT: workgroup
// CHECK: memref.store %{{.*}} : memref<32xf32>
// CHECK: memref.store %{{.*}} : memref<32xf32>
// CHECK: gpu.terminator
// CHECK: linalg.generic {{.*}} ins(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : memref<32x2048xf32>, memref<32x2048xf32>, memref<32x1xf32>, memref<32x1xf32>)
// CHECK: linalg.generic {{.*}} ins(%{{.*}} : memref<32x2048xf32>)
func.func @wide_layer_norm_grad(%g: tensor<32x2048xf32>, %x: tensor<32x2048xf32>, %w: tensor<2048xf32>) -> (tensor<32x2048xf32>, tensor<2048xf32>, tensor<2048xf32>) {
  %dx, %dw, %db = nn.layer_norm_grad %g, %x, %w {eps = 1.0e-05 : f64} : (tensor<32x2048xf32>, tensor<32x2048xf32>, tensor<2048xf32>) -> (tensor<32x2048xf32>, tensor<2048xf32>, tensor<2048xf32>)
  return %dx, %dw, %db : tensor<32x2048xf32>, tensor<2048xf32>, tensor<2048xf32>
}
