// Host copies become linalg.copy (then kernels), except a result that
// buffer-results-to-out-params copies into its out-parameter from a
// reshaped temporary: the temporary becomes a view of the out-parameter,
// written in place, and the copy goes.
// RUN: tessera-opt %s --pass-pipeline="builtin.module(func.func(tessera-gpu-copies-to-linalg))" | FileCheck %s

// CHECK-LABEL: func.func @sum_into_result
// CHECK-SAME: (%[[X:.*]]: memref<8x64xf32>, %[[OUT:.*]]: memref<64xf32>)
// CHECK-NOT: memref.alloc
// CHECK: %[[VIEW:.*]] = memref.expand_shape %[[OUT]] {{\[\[}}0, 1]] output_shape [1, 64] : memref<64xf32> into memref<1x64xf32>
// CHECK: linalg.fill ins(%{{.*}} : f32) outs(%[[VIEW]] : memref<1x64xf32>)
// CHECK: linalg.generic {{.*}} ins(%[[X]] : memref<8x64xf32>) outs(%[[VIEW]] : memref<1x64xf32>)
// CHECK-NOT: copy
// CHECK-NOT: memref.dealloc
// CHECK: return
func.func @sum_into_result(%x: memref<8x64xf32>, %out: memref<64xf32>) {
  %zero = arith.constant 0.0 : f32
  %sum = memref.alloc() : memref<1x64xf32>
  linalg.fill ins(%zero : f32) outs(%sum : memref<1x64xf32>)
  linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (0, j)>],
                  iterator_types = ["reduction", "parallel"]}
      ins(%x : memref<8x64xf32>) outs(%sum : memref<1x64xf32>) {
  ^bb0(%a: f32, %acc: f32):
    %s = arith.addf %acc, %a : f32
    linalg.yield %s : f32
  }
  %flat = memref.collapse_shape %sum [[0, 1]] : memref<1x64xf32> into memref<64xf32>
  memref.copy %flat, %out : memref<64xf32> to memref<64xf32>
  memref.dealloc %sum : memref<1x64xf32>
  return
}

// The temporary is read after the copy: it stays, and the copy is a
// linalg.copy.
// CHECK-LABEL: func.func @read_after
// CHECK: memref.alloc() : memref<1x64xf32>
// CHECK: linalg.copy
// CHECK: memref.dealloc
func.func @read_after(%x: memref<1x64xf32>, %out: memref<64xf32>, %again: memref<1x64xf32>) {
  %t = memref.alloc() : memref<1x64xf32>
  memref.copy %x, %t : memref<1x64xf32> to memref<1x64xf32>
  %flat = memref.collapse_shape %t [[0, 1]] : memref<1x64xf32> into memref<64xf32>
  memref.copy %flat, %out : memref<64xf32> to memref<64xf32>
  memref.copy %t, %again : memref<1x64xf32> to memref<1x64xf32>
  memref.dealloc %t : memref<1x64xf32>
  return
}

// The out-parameter has another user: the copy stays.
// CHECK-LABEL: func.func @out_used_twice
// CHECK: memref.alloc() : memref<1x64xf32>
// CHECK: linalg.copy ins(%{{.*}} : memref<64xf32>) outs(%arg1 : memref<64xf32>)
// CHECK: linalg.copy ins(%arg1 : memref<64xf32>) outs(%arg2 : memref<64xf32>)
func.func @out_used_twice(%x: memref<1x64xf32>, %out: memref<64xf32>, %other: memref<64xf32>) {
  %t = memref.alloc() : memref<1x64xf32>
  memref.copy %x, %t : memref<1x64xf32> to memref<1x64xf32>
  %flat = memref.collapse_shape %t [[0, 1]] : memref<1x64xf32> into memref<64xf32>
  memref.copy %flat, %out : memref<64xf32> to memref<64xf32>
  memref.copy %out, %other : memref<64xf32> to memref<64xf32>
  memref.dealloc %t : memref<1x64xf32>
  return
}
