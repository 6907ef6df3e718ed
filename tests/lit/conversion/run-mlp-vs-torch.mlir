// Executes linear -> gelu -> matmul -> silu -> add lowered through
// convert-nn-to-linalg and MLIR's CPU pipeline, and compares the printed
// result with PyTorch (f32, max relative error 1e-5).
// RUN: tessera-opt %s --convert-nn-to-linalg \
// RUN:   --one-shot-bufferize="bufferize-function-boundaries" \
// RUN:   --convert-linalg-to-loops --convert-scf-to-cf --expand-strided-metadata \
// RUN:   --lower-affine --finalize-memref-to-llvm --convert-math-to-llvm \
// RUN:   --convert-to-llvm --reconcile-unrealized-casts \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:   -shared-libs=%llvmlibdir/libmlir_runner_utils.so,%llvmlibdir/libmlir_c_runner_utils.so \
// RUN: > %t.out
// RUN: %python %S/compare_torch.py %t.out mlp | FileCheck %s
// CHECK: max relative error {{.*}} <= 1e-05: ok

func.func @model(%x: tensor<2x3xf32>, %w: tensor<4x3xf32>, %b: tensor<4xf32>,
                 %m: tensor<4x2xf32>) -> tensor<2x2xf32> {
  %h = nn.linear %x, %w, %b : (tensor<2x3xf32>, tensor<4x3xf32>, tensor<4xf32>) -> tensor<2x4xf32>
  %g = nn.gelu %h : tensor<2x4xf32>
  %p = nn.matmul %g, %m : (tensor<2x4xf32>, tensor<4x2xf32>) -> tensor<2x2xf32>
  %s = nn.silu %p : tensor<2x2xf32>
  %t = nn.transpose %s {dim0 = 0 : i64, dim1 = 1 : i64} : (tensor<2x2xf32>) -> tensor<2x2xf32>
  %y = nn.sub %s, %t : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
  %z = nn.mul %y, %s : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
  %r = nn.add %z, %s : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
  return %r : tensor<2x2xf32>
}

func.func private @printMemrefF32(tensor<*xf32>)

func.func @main() {
  %x = arith.constant dense<[[0.5, -1.25, 2.0], [1.5, 0.25, -0.75]]> : tensor<2x3xf32>
  %w = arith.constant dense<[[0.1, 0.2, -0.3], [0.4, -0.5, 0.6], [-0.7, 0.8, 0.9], [1.0, -1.1, 0.05]]> : tensor<4x3xf32>
  %b = arith.constant dense<[0.01, -0.02, 0.03, -0.04]> : tensor<4xf32>
  %m = arith.constant dense<[[0.3, -0.6], [0.9, 0.2], [-0.4, 0.7], [0.5, -0.8]]> : tensor<4x2xf32>
  %r = call @model(%x, %w, %b, %m) : (tensor<2x3xf32>, tensor<4x3xf32>, tensor<4xf32>, tensor<4x2xf32>) -> tensor<2x2xf32>
  %u = tensor.cast %r : tensor<2x2xf32> to tensor<*xf32>
  call @printMemrefF32(%u) : (tensor<*xf32>) -> ()
  return
}
