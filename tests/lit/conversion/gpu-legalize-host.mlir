// RUN: tessera-opt %s --tessera-gpu-legalize-host --split-input-file --verify-diagnostics | FileCheck %s

// A scalar read from device memory (an optimizer hyper-parameter) and the
// arithmetic on it are recomputed inside the kernel that uses it; the host
// keeps nothing but allocation, launch and free.
// CHECK-LABEL: func.func @hyper
// CHECK-NOT: memref.load
// CHECK: %[[BUF:.*]] = gpu.alloc () : memref<4xf32>
// CHECK: gpu.launch
// CHECK: %[[LR:.*]] = memref.load %arg0[%c1]
// CHECK: arith.mulf %[[LR]]
// CHECK: memref.store {{.*}}, %[[BUF]]
// CHECK: gpu.dealloc %[[BUF]]
func.func @hyper(%hyper: memref<2xf32>, %out: memref<4xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %two = arith.constant 2.0 : f32
  %lr = memref.load %hyper[%c1] : memref<2xf32>
  %scaled = arith.mulf %lr, %two : f32
  %buf = memref.alloc() : memref<4xf32>
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c4, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c1, %sy = %c1, %sz = %c1) {
    memref.store %scaled, %buf[%bx] : memref<4xf32>
    gpu.terminator
  }
  memref.copy %buf, %out : memref<4xf32> to memref<4xf32>
  memref.dealloc %buf : memref<4xf32>
  return
}

// -----

// A reduction without a parallel dimension runs in a one-thread kernel; its
// result reaches a later host use through a rank-0 device buffer.
// CHECK-LABEL: func.func @reduce
// CHECK: %[[SLOT:.*]] = gpu.alloc () : memref<f32>
// CHECK: gpu.launch blocks({{.*}}) in ({{.*}} = %[[ONE:.*]], {{.*}} = %[[ONE]], {{.*}} = %[[ONE]]) threads({{.*}}) in ({{.*}} = %[[ONE]], {{.*}} = %[[ONE]], {{.*}} = %[[ONE]])
// CHECK: scf.for
// CHECK: memref.store %{{.*}}, %[[SLOT]][]
// CHECK: } {tessera.serial}
// CHECK: gpu.alloc () : memref<f32>
// CHECK: gpu.launch
// CHECK: memref.load %[[SLOT]][]
// CHECK: } {tessera.serial}
// CHECK: gpu.dealloc %[[SLOT]]
func.func @reduce(%x: memref<8xf32>, %out: memref<f32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %zero = arith.constant 0.0 : f32
  %sum = scf.for %i = %c0 to %c8 step %c1 iter_args(%acc = %zero) -> f32 {
    %v = memref.load %x[%i] : memref<8xf32>
    %a = arith.addf %acc, %v : f32
    scf.yield %a : f32
  }
  %tmp = memref.alloc() : memref<f32>
  memref.store %sum, %tmp[] : memref<f32>
  %r = memref.load %tmp[] : memref<f32>
  memref.store %r, %out[] : memref<f32>
  memref.dealloc %tmp : memref<f32>
  return
}

// -----

// A read cannot move past a kernel that may write the buffer.
func.func @overwritten(%x: memref<4xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  // expected-error @+1 {{the buffer may change before the kernel runs}}
  %v = memref.load %x[%c0] : memref<4xf32>
  // expected-note @+1 {{the buffer may change here}}
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c4, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c1, %sy = %c1, %sz = %c1) {
    memref.store %v, %x[%bx] : memref<4xf32>
    gpu.terminator
  }
  return
}
