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

// A loop of 96 iterations is one block of 96 threads.
// CHECK-LABEL: func.func @small
// CHECK-DAG: %[[C96:.*]] = arith.constant 96 : index
// CHECK-DAG: %[[ONE:.*]] = arith.constant 1 : index
// CHECK: gpu.launch blocks({{.*}}) in ({{.*}} = %[[ONE]], {{.*}}) threads({{.*}}) in ({{.*}} = %[[C96]],
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
