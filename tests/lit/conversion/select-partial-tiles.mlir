// Which contractions tessera-gpu-select-tensor-cores puts on tensor cores
// when their shapes do not tile. By default (the mma.sync kernel, which has
// no partial tiles) none; with ragged-shapes (sm_90a's wgmma kernel) all,
// a transposed operand read in place (the kernel reads one whose rows are
// not whole 16-byte pieces, 8 halves, from a copy whose rows are).
// RUN: tessera-opt %s --pass-pipeline="builtin.module(convert-nn-to-linalg,tessera-gpu-select-tensor-cores{ragged-shapes},canonicalize)" | FileCheck %s
// RUN: tessera-opt %s --pass-pipeline="builtin.module(convert-nn-to-linalg,tessera-gpu-select-tensor-cores,canonicalize)" | FileCheck %s --check-prefix=TILED

// CHECK-DAG: #[[MK:.*]] = affine_map<(d0, d1, d2) -> (d0, d2)>
// CHECK-DAG: #[[NK:.*]] = affine_map<(d0, d1, d2) -> (d1, d2)>
// CHECK-DAG: #[[KN:.*]] = affine_map<(d0, d1, d2) -> (d2, d1)>
// CHECK-DAG: #[[KM:.*]] = affine_map<(d0, d1, d2) -> (d2, d0)>

// A linear layer of 72 -> 83 features on 200 rows: both operands K-major
// (K = 72).
// CHECK-LABEL: func.func @linear
// CHECK: linalg.generic {indexing_maps = [#[[MK]], #[[NK]], #{{.*}}], {{.*}} ins(%{{.*}}, %{{.*}} : tensor<200x72xf16>, tensor<83x72xf16>) outs(%{{.*}} : tensor<200x83xf32>) attrs = {tessera.mma = "bf16"}
// TILED-LABEL: func.func @linear
// TILED-NOT: tessera.mma
// TILED: return
func.func @linear(%x: tensor<200x72xf32>, %w: tensor<83x72xf32>) -> tensor<200x83xf32> {
  %xr = precision.round %x {format = "bf16"} : tensor<200x72xf32>
  %wr = precision.round %w {format = "bf16"} : tensor<83x72xf32>
  %y = nn.linear %xr, %wr : (tensor<200x72xf32>, tensor<83x72xf32>) -> tensor<200x83xf32>
  return %y : tensor<200x83xf32>
}

// Its input gradient, dx = dy w: A = dy has rows of 83 halves (the wgmma
// kernel reads a copy of it with rows of 88).
// CHECK-LABEL: func.func @odd_k
// CHECK: linalg.generic {indexing_maps = [#[[MK]], #[[KN]], #{{.*}}], {{.*}} ins(%{{.*}}, %{{.*}} : tensor<200x83xf16>, tensor<83x72xf16>) outs(%{{.*}} : tensor<200x72xf32>) attrs = {tessera.mma = "bf16"}
func.func @odd_k(%g: tensor<200x83xf32>, %w: tensor<83x72xf32>) -> tensor<200x72xf32> {
  %gr = precision.round %g {format = "bf16"} : tensor<200x83xf32>
  %wr = precision.round %w {format = "bf16"} : tensor<83x72xf32>
  %dx = nn.matmul %gr, %wr : (tensor<200x83xf32>, tensor<83x72xf32>) -> tensor<200x72xf32>
  return %dx : tensor<200x72xf32>
}

// A weight's gradient dW = dy^T x with 83 outputs (M): A is dy read
// M-major in place (its rows of 83 from the kernel's padded copy, which
// the input gradient's kernel shares), not a transposed copy; x is B,
// K x N.
// CHECK-LABEL: func.func @odd_m_weight_grad
// CHECK-NOT: linalg.transpose
// CHECK: linalg.generic {indexing_maps = [#[[KM]], #[[KN]], #{{.*}}], {{.*}} ins(%{{.*}}, %{{.*}} : tensor<200x83xf16>, tensor<200x72xf16>) outs(%{{.*}} : tensor<83x72xf32>) attrs = {tessera.mma = "bf16"}
func.func @odd_m_weight_grad(%g: tensor<200x83xf32>, %x: tensor<200x72xf32>) -> tensor<83x72xf32> {
  %gr = precision.round %g {format = "bf16"} : tensor<200x83xf32>
  %xr = precision.round %x {format = "bf16"} : tensor<200x72xf32>
  %gt = nn.transpose %gr {dim0 = 0 : i64, dim1 = 1 : i64} : (tensor<200x83xf32>) -> tensor<83x200xf32>
  %dw = nn.matmul %gt, %xr : (tensor<83x200xf32>, tensor<200x72xf32>) -> tensor<83x72xf32>
  return %dw : tensor<83x72xf32>
}
