// RUN: tessera-opt %s --pass-pipeline='builtin.module(func.func(tessera-gpu-parallel-dims-outermost))' | FileCheck %s
// RUN: tessera-opt %s --pass-pipeline='builtin.module(func.func(tessera-gpu-parallel-dims-outermost,convert-linalg-to-parallel-loops))' | FileCheck %s --check-prefix=LOOPS

// A bias gradient: [B, T, D] summed over B and T. The output dimension
// comes first, the reduced ones follow in their order, and the accesses
// are unchanged.
// CHECK-DAG: #[[IN:.*]] = affine_map<(d0, d1, d2) -> (d1, d2, d0)>
// CHECK-DAG: #[[OUT:.*]] = affine_map<(d0, d1, d2) -> (d0)>
// CHECK-LABEL: func.func @bias_grad
// CHECK: linalg.generic {indexing_maps = [#[[IN]], #[[OUT]]], iterator_types = ["parallel", "reduction", "reduction"]}
// Each thread of the kernel owns an output element and loops over the
// rows, instead of a host loop over the rows launching one kernel each.
// LOOPS-LABEL: func.func @bias_grad
// LOOPS: scf.parallel (%[[D:.*]]) =
// LOOPS-NEXT: scf.for %[[B:.*]] =
// LOOPS-NEXT: scf.for %[[T:.*]] =
// LOOPS-NEXT: memref.load %arg0[%[[B]], %[[T]], %[[D]]]
func.func @bias_grad(%g: memref<8x16x32xf32>, %acc: memref<32xf32>) {
  linalg.generic {indexing_maps = [affine_map<(b, t, d) -> (b, t, d)>, affine_map<(b, t, d) -> (d)>],
                  iterator_types = ["reduction", "reduction", "parallel"]}
      ins(%g : memref<8x16x32xf32>) outs(%acc : memref<32xf32>) {
  ^bb0(%x: f32, %a: f32):
    %s = arith.addf %a, %x : f32
    linalg.yield %s : f32
  }
  return
}

// Already in order: unchanged.
// CHECK-LABEL: func.func @row_sum
// CHECK: linalg.generic {indexing_maps = [#{{.*}}, #{{.*}}], iterator_types = ["parallel", "reduction"]}
func.func @row_sum(%x: memref<8x32xf32>, %acc: memref<8xf32>) {
  linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i)>],
                  iterator_types = ["parallel", "reduction"]}
      ins(%x : memref<8x32xf32>) outs(%acc : memref<8xf32>) {
  ^bb0(%v: f32, %a: f32):
    %s = arith.addf %a, %v : f32
    linalg.yield %s : f32
  }
  return
}
