// RUN: tessera-opt %s --pass-pipeline='builtin.module(func.func(tessera-gpu-tile-parallel-loops,gpu-map-parallel-loops,convert-parallel-loops-to-gpu,lower-affine,canonicalize))' | FileCheck %s

// An element-wise loop nest over 8x128x100 becomes 400 blocks of 256
// threads (the collapsed index, row-major, so neighbouring threads touch
// neighbouring elements), with a bounds check on the last block.
// CHECK-LABEL: func.func @scale
// CHECK-DAG: %[[C400:.*]] = arith.constant 400 : index
// CHECK-DAG: %[[C256:.*]] = arith.constant 256 : index
// CHECK: gpu.launch blocks({{.*}}) in ({{.*}} = %[[C400]], {{.*}} = %{{.*}}, {{.*}} = %{{.*}}) threads({{.*}}) in ({{.*}} = %[[C256]],
// CHECK: scf.if
// CHECK: memref.load
func.func @scale(%x: memref<8x128x100xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %c100 = arith.constant 100 : index
  %c128 = arith.constant 128 : index
  %two = arith.constant 2.0 : f32
  scf.parallel (%i, %j, %k) = (%c0, %c0, %c0) to (%c8, %c128, %c100) step (%c1, %c1, %c1) {
    %v = memref.load %x[%i, %j, %k] : memref<8x128x100xf32>
    %w = arith.mulf %v, %two : f32
    memref.store %w, %x[%i, %j, %k] : memref<8x128x100xf32>
    scf.reduce
  }
  return
}

// Loops that would give fewer than 128 blocks of 256 get smaller blocks,
// down to a warp: 96 iterations are 3 blocks of 32 threads.
// CHECK-LABEL: func.func @small
// CHECK-DAG: %[[C3:.*]] = arith.constant 3 : index
// CHECK-DAG: %[[C32:.*]] = arith.constant 32 : index
// CHECK: gpu.launch blocks({{.*}}) in ({{.*}} = %[[C3]], {{.*}}) threads({{.*}}) in ({{.*}} = %[[C32]],
func.func @small(%x: memref<96xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c96 = arith.constant 96 : index
  %two = arith.constant 2.0 : f32
  scf.parallel (%i) = (%c0) to (%c96) step (%c1) {
    %v = memref.load %x[%i] : memref<96xf32>
    %w = arith.mulf %v, %two : f32
    memref.store %w, %x[%i] : memref<96xf32>
    scf.reduce
  }
  return
}

// 8192 iterations (a row kernel over GPT-2's rows): 128 blocks of 64
// threads rather than 32 of 256.
// CHECK-LABEL: func.func @rows
// CHECK-DAG: %[[C128:.*]] = arith.constant 128 : index
// CHECK-DAG: %[[C64:.*]] = arith.constant 64 : index
// CHECK: gpu.launch blocks({{.*}}) in ({{.*}} = %[[C128]], {{.*}}) threads({{.*}}) in ({{.*}} = %[[C64]],
func.func @rows(%x: memref<8192xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8192 = arith.constant 8192 : index
  %two = arith.constant 2.0 : f32
  scf.parallel (%i) = (%c0) to (%c8192) step (%c1) {
    %v = memref.load %x[%i] : memref<8192xf32>
    %w = arith.mulf %v, %two : f32
    memref.store %w, %x[%i] : memref<8192xf32>
    scf.reduce
  }
  return
}

// Fewer than 32 iterations: one block of that many threads.
// CHECK-LABEL: func.func @tiny
// CHECK-DAG: %[[C5:.*]] = arith.constant 5 : index
// CHECK: gpu.launch {{.*}} threads({{.*}}) in ({{.*}} = %[[C5]],
func.func @tiny(%x: memref<5xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c5 = arith.constant 5 : index
  %two = arith.constant 2.0 : f32
  scf.parallel (%i) = (%c0) to (%c5) step (%c1) {
    %v = memref.load %x[%i] : memref<5xf32>
    %w = arith.mulf %v, %two : f32
    memref.store %w, %x[%i] : memref<5xf32>
    scf.reduce
  }
  return
}
