// A reduction's identity fill joins its loop nest (scf-parallel-loop-fusion)
// and its accumulator moves from memory into an iter_arg: one loop nest,
// one store per output element, no load or store per term.
// RUN: tessera-opt %s --pass-pipeline="builtin.module(func.func(tessera-promote-accumulators))" | FileCheck %s

// CHECK-LABEL: func.func @column_sums
// CHECK-DAG: %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-DAG: %[[OUT:.*]] = memref.alloc() : memref<1x64xf32>
// CHECK: scf.parallel (%[[J:.*]]) =
// CHECK-NEXT: %[[SUM:.*]] = scf.for %[[I:.*]] = {{.*}} iter_args(%[[ACC:.*]] = %[[ZERO]]) -> (f32) {
// CHECK-NEXT: %[[X:.*]] = memref.load %arg0[%[[I]], %[[J]]]
// CHECK-NEXT: %[[NEXT:.*]] = arith.addf %[[ACC]], %[[X]] : f32
// CHECK-NEXT: scf.yield %[[NEXT]] : f32
// CHECK: memref.store %[[SUM]], %[[OUT]][%{{.*}}, %[[J]]] : memref<1x64xf32>
// CHECK-NEXT: scf.reduce
// CHECK-NOT: scf.parallel
// CHECK: return
func.func @column_sums(%x: memref<128x64xf32>) -> memref<1x64xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  %c128 = arith.constant 128 : index
  %zero = arith.constant 0.0 : f32
  %out = memref.alloc() : memref<1x64xf32>
  scf.parallel (%j) = (%c0) to (%c64) step (%c1) {
    memref.store %zero, %out[%c0, %j] : memref<1x64xf32>
    scf.reduce
  }
  scf.parallel (%j) = (%c0) to (%c64) step (%c1) {
    scf.for %i = %c0 to %c128 step %c1 {
      %v = memref.load %x[%i, %j] : memref<128x64xf32>
      %a = memref.load %out[%c0, %j] : memref<1x64xf32>
      %s = arith.addf %a, %v : f32
      memref.store %s, %out[%c0, %j] : memref<1x64xf32>
    }
    scf.reduce
  }
  return %out : memref<1x64xf32>
}

// A sum, then its bf16 rounding into a second buffer allocated between the
// two loop nests (the allocation moves up, so the nests fuse): the
// rounding reads the sum from the register, and the sum's buffer, only
// written now, goes with its free.
// CHECK-LABEL: func.func @sum_then_round
// CHECK: %[[ROUNDED:.*]] = memref.alloc() : memref<64xf32>
// CHECK-NOT: memref.alloc
// CHECK: scf.parallel
// CHECK: %[[SUM:.*]] = scf.for
// CHECK: %[[B:.*]] = arith.truncf %[[SUM]] : f32 to bf16
// CHECK: %[[W:.*]] = arith.extf %[[B]] : bf16 to f32
// CHECK: memref.store %[[W]], %[[ROUNDED]]
// CHECK-NEXT: scf.reduce
// CHECK-NOT: scf.parallel
// CHECK-NOT: memref.dealloc
// CHECK: return %[[ROUNDED]]
func.func @sum_then_round(%x: memref<128x64xf32>) -> memref<64xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  %c128 = arith.constant 128 : index
  %zero = arith.constant 0.0 : f32
  %sum = memref.alloc() : memref<64xf32>
  scf.parallel (%j) = (%c0) to (%c64) step (%c1) {
    memref.store %zero, %sum[%j] : memref<64xf32>
    scf.reduce
  }
  scf.parallel (%j) = (%c0) to (%c64) step (%c1) {
    scf.for %i = %c0 to %c128 step %c1 {
      %v = memref.load %x[%i, %j] : memref<128x64xf32>
      %a = memref.load %sum[%j] : memref<64xf32>
      %s = arith.addf %a, %v : f32
      memref.store %s, %sum[%j] : memref<64xf32>
    }
    scf.reduce
  }
  %rounded = memref.alloc() : memref<64xf32>
  scf.parallel (%j) = (%c0) to (%c64) step (%c1) {
    %t = memref.load %sum[%j] : memref<64xf32>
    %b = arith.truncf %t : f32 to bf16
    %w = arith.extf %b : bf16 to f32
    memref.store %w, %rounded[%j] : memref<64xf32>
    scf.reduce
  }
  memref.dealloc %sum : memref<64xf32>
  return %rounded : memref<64xf32>
}

// The accumulator's buffer may alias what the loop reads (two function
// arguments): nothing moves, and the fill stays.
// CHECK-LABEL: func.func @may_alias
// CHECK: scf.parallel
// CHECK: memref.store %{{.*}}, %arg1
// CHECK: scf.for
// CHECK-NOT: iter_args
// CHECK: memref.load %arg0
// CHECK: memref.load %arg1
// CHECK: memref.store %{{.*}}, %arg1
func.func @may_alias(%x: memref<64x64xf32>, %out: memref<64x64xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  %zero = arith.constant 0.0 : f32
  scf.parallel (%j) = (%c0) to (%c64) step (%c1) {
    memref.store %zero, %out[%c0, %j] : memref<64x64xf32>
    scf.for %i = %c0 to %c64 step %c1 {
      %v = memref.load %x[%i, %j] : memref<64x64xf32>
      %a = memref.load %out[%c0, %j] : memref<64x64xf32>
      %s = arith.addf %a, %v : f32
      memref.store %s, %out[%c0, %j] : memref<64x64xf32>
    }
    scf.reduce
  }
  return
}

// A fresh buffer cannot alias an argument: the accumulator moves, the
// fill's store is forwarded to the loop's first load and then dropped.
// The element read after the loop gets the stored sum.
// CHECK-LABEL: func.func @fresh
// CHECK: %[[BUF:.*]] = memref.alloc() : memref<64xf32>
// CHECK: scf.parallel (%[[J:.*]]) =
// CHECK-NOT: memref.store
// CHECK: %[[SUM:.*]] = scf.for {{.*}} iter_args
// CHECK: memref.store %[[SUM]], %[[BUF]][%[[J]]]
// CHECK-NOT: memref.load %[[BUF]]
// CHECK: %[[TWICE:.*]] = arith.mulf %[[SUM]], %[[SUM]]
// CHECK: memref.store %[[TWICE]], %arg1[%[[J]]]
func.func @fresh(%x: memref<64x64xf32>, %y: memref<64xf32>) -> memref<64xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  %zero = arith.constant 0.0 : f32
  %buf = memref.alloc() : memref<64xf32>
  scf.parallel (%j) = (%c0) to (%c64) step (%c1) {
    memref.store %zero, %buf[%j] : memref<64xf32>
    scf.for %i = %c0 to %c64 step %c1 {
      %v = memref.load %x[%i, %j] : memref<64x64xf32>
      %a = memref.load %buf[%j] : memref<64xf32>
      %s = arith.addf %a, %v : f32
      memref.store %s, %buf[%j] : memref<64xf32>
    }
    %t = memref.load %buf[%j] : memref<64xf32>
    %t2 = arith.mulf %t, %t : f32
    memref.store %t2, %y[%j] : memref<64xf32>
    scf.reduce
  }
  return %buf : memref<64xf32>
}
