// The embedding gradient's loop over rows becomes one parallel loop over
// the columns (one kernel on a GPU), each column looping over the rows in
// order. (tessera-gpu-copies-to-linalg drops the self-copy of the updated
// row that bufferization leaves.)
// RUN: tessera-opt %s --pass-pipeline='builtin.module(convert-nn-to-linalg,canonicalize,one-shot-bufferize{bufferize-function-boundaries},func.func(tessera-gpu-copies-to-linalg,convert-linalg-to-parallel-loops),canonicalize,func.func(tessera-gpu-interchange-row-loops))' | FileCheck %s
// CHECK-LABEL: func.func @grad
// CHECK: scf.parallel (%[[COL:.*]]) = (%c0) to (%c4)
// CHECK-NEXT: scf.for %[[ROW:.*]] = %c0 to %c6
// CHECK-NEXT: memref.load %{{.*}}[%[[ROW]]] : memref<6xi32
// CHECK: memref.load %{{.*}}[%c0, %[[COL]]]
// CHECK: memref.load %{{.*}}[%c0, %[[COL]]]
// CHECK: arith.addf
// CHECK: memref.store
// CHECK-NOT: memref.copy
// CHECK-NOT: scf.for
// CHECK: return

// Executed on the CPU after the interchange: rows 1 and 3 of the gradient
// collect three and two rows of g, in order; rows 2 and 4 stay zero.
// RUN: tessera-opt %s --pass-pipeline='builtin.module(convert-nn-to-linalg,canonicalize,one-shot-bufferize{bufferize-function-boundaries},func.func(tessera-gpu-copies-to-linalg,convert-linalg-to-parallel-loops),canonicalize,func.func(tessera-gpu-interchange-row-loops),convert-scf-to-cf,expand-strided-metadata,lower-affine,finalize-memref-to-llvm,convert-to-llvm,reconcile-unrealized-casts)' \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:   -shared-libs=%llvmlibdir/libmlir_runner_utils.so,%llvmlibdir/libmlir_c_runner_utils.so \
// RUN: | FileCheck %s --check-prefix=EXEC
// EXEC: {{\[}}[1000,   2000,   3000,   4000],
// EXEC-NEXT: [100101,   200202,   300303,   400404],
// EXEC-NEXT: [0,   0,   0,   0],
// EXEC-NEXT: [10010,   20020,   30030,   40040],
// EXEC-NEXT: [0,   0,   0,   0]]

func.func @grad(%g: tensor<6x4xf32>, %i: tensor<6xi32>) -> tensor<5x4xf32> {
  %r = nn.embedding_grad %g, %i {num_embeddings = 5 : i64} : (tensor<6x4xf32>, tensor<6xi32>) -> tensor<5x4xf32>
  return %r : tensor<5x4xf32>
}

func.func private @printMemrefF32(tensor<*xf32>)

func.func @main() {
  %g = arith.constant dense<[[1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0],
                             [100.0, 200.0, 300.0, 400.0], [1000.0, 2000.0, 3000.0, 4000.0],
                             [10000.0, 20000.0, 30000.0, 40000.0],
                             [100000.0, 200000.0, 300000.0, 400000.0]]> : tensor<6x4xf32>
  %i = arith.constant dense<[1, 3, 1, 0, 3, 1]> : tensor<6xi32>
  %r = call @grad(%g, %i) : (tensor<6x4xf32>, tensor<6xi32>) -> tensor<5x4xf32>
  %u = tensor.cast %r : tensor<5x4xf32> to tensor<*xf32>
  call @printMemrefF32(%u) : (tensor<*xf32>) -> ()
  return
}
