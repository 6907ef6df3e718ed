// The warpgroup-MMA kernel takes shapes that its 128 x 128 x 64 tiles do
// not divide. The grid covers M and N rounded up; a 16-byte copy of A or B
// that lies past M, N or K reads nothing (cp.async source size 0, which
// zero-fills its shared-memory piece) from an address clamped inside the
// operand; results past M or N are not stored, and with N odd each column
// is stored apart. Shapes that tile get none of these checks.
// RUN: tessera-opt %s --tessera-gpu-tensor-core-matmuls="wgmma" --canonicalize | FileCheck %s

#a = affine_map<(m, n, k) -> (m, k)>
#b = affine_map<(m, n, k) -> (k, n)>
#bt = affine_map<(m, n, k) -> (n, k)>
#c = affine_map<(m, n, k) -> (m, n)>

// M = 200 (2 row blocks, the second partial), N = 83 (odd), K = 72 (two K
// tiles, the second 8 deep).
// CHECK-LABEL: func.func @odd_columns
// CHECK: gpu.launch blocks({{.*}}) in ({{.*}} = %c1, {{.*}} = %c2, {{.*}} = %c1) threads
// A's piece: row m < 200 (clamped to 199), chunk k < 72 (clamped to 64).
// CHECK: %[[ROW:.*]] = arith.cmpi ult, %[[M:.*]], %c200 : index
// CHECK: %[[MC:.*]] = arith.minui %[[M]], %c199 : index
// CHECK: %[[COL:.*]] = arith.cmpi ult, %[[K:.*]], %c72 : index
// CHECK: %[[BOTH:.*]] = arith.andi %[[ROW]], %[[COL]] : i1
// CHECK: %[[KC:.*]] = arith.minui %[[K]], %c64 : index
// CHECK: %[[SIZE:.*]] = arith.select %[[BOTH]], %c8, %c0 : index
// CHECK: nvgpu.device_async_copy %arg0[%[[MC]], %[[KC]]], %{{.*}}[%{{.*}}], 8, %[[SIZE]] {bypassL1}
// B (N x K): row n < 83, clamped to 82.
// CHECK: arith.cmpi ult, %{{.*}}, %c83 : index
// CHECK: arith.minui %{{.*}}, %c82 : index
// CHECK: nvgpu.device_async_copy %arg1
// CHECK: nvvm.wgmma.mma_async
// One f32 per store, each inside the matrix.
// CHECK: %[[R:.*]] = arith.cmpi ult, %{{.*}}, %c200 : index
// CHECK: %[[C:.*]] = arith.cmpi ult, %{{.*}}, %c83 : index
// CHECK: %[[IN:.*]] = arith.andi %[[R]], %[[C]] : i1
// CHECK: scf.if %[[IN]] {
// CHECK-NEXT: memref.store %{{.*}}, %arg2[%{{.*}}, %{{.*}}] : memref<200x83xf32>
// CHECK-NOT: vector.store
// CHECK: gpu.terminator
func.func @odd_columns(%x: memref<200x72xf16>, %w: memref<83x72xf16>,
                       %y: memref<200x83xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%y : memref<200x83xf32>)
  linalg.generic {indexing_maps = [#a, #bt, #c],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<200x72xf16>, memref<83x72xf16>)
      outs(%y : memref<200x83xf32>) attrs = {tessera.mma = "f16"} {
  ^bb0(%l: f16, %r: f16, %acc: f32):
    %le = arith.extf %l : f16 to f32
    %re = arith.extf %r : f16 to f32
    %p = arith.mulf %le, %re : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}

// M = 128 (whole), N = 120 (even, one partial column block), K = 64, B
// given K x N (N-major): only columns are checked, and pairs of columns
// are stored together.
// CHECK-LABEL: func.func @even_columns
// CHECK-NOT: arith.cmpi ult, %{{.*}}, %c128 :
// B's chunk of 8 columns n < 120, clamped to 112.
// CHECK: arith.cmpi ult, %{{.*}}, %c120 : index
// CHECK: arith.minui %{{.*}}, %c112 : index
// CHECK: nvgpu.device_async_copy %arg1
// CHECK: nvvm.wgmma.mma_async
// CHECK: %[[C:.*]] = arith.cmpi ult, %{{.*}}, %c120 : index
// CHECK-NEXT: scf.if %[[C]] {
// CHECK: vector.store %{{.*}}, %arg2[%{{.*}}, %{{.*}}] {alignment = 8 : i64} : memref<128x120xf32>, vector<2xf32>
// CHECK-NOT: memref.store
// CHECK: gpu.terminator
func.func @even_columns(%x: memref<128x64xf16>, %w: memref<64x120xf16>,
                        %y: memref<128x120xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%y : memref<128x120xf32>)
  linalg.generic {indexing_maps = [#a, #b, #c],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<128x64xf16>, memref<64x120xf16>)
      outs(%y : memref<128x120xf32>) attrs = {tessera.mma = "f16"} {
  ^bb0(%l: f16, %r: f16, %acc: f32):
    %le = arith.extf %l : f16 to f32
    %re = arith.extf %r : f16 to f32
    %p = arith.mulf %le, %re : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}

// Whole tiles: no bounds at all.
// CHECK-LABEL: func.func @whole_tiles
// CHECK-NOT: arith.cmpi ult
// CHECK-NOT: scf.if
// CHECK: return
func.func @whole_tiles(%x: memref<256x128xf16>, %w: memref<128x128xf16>,
                       %y: memref<256x128xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%y : memref<256x128xf32>)
  linalg.generic {indexing_maps = [#a, #bt, #c],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<256x128xf16>, memref<128x128xf16>)
      outs(%y : memref<256x128xf32>) attrs = {tessera.mma = "f16"} {
  ^bb0(%l: f16, %r: f16, %acc: f32):
    %le = arith.extf %l : f16 to f32
    %re = arith.extf %r : f16 to f32
    %p = arith.mulf %le, %re : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}

// A = dy with rows of 83 halves (dx = dy w, K = 83): the kernel reads a
// copy of A whose rows are 88 halves, made just before it and freed after
// it. The last 16-byte piece of a row holds 3 elements: the copy reads
// min(83 - k, 8) of them and zero-fills the rest.
// CHECK-LABEL: func.func @odd_rows
// CHECK: %[[PAD:.*]] = memref.alloc() : memref<200x88xf16>
// CHECK: %[[VIEW:.*]] = memref.subview %[[PAD]][0, 0] [200, 83] [1, 1]
// CHECK: linalg.copy ins(%arg0 : memref<200x83xf16>) outs(%[[VIEW]] : memref<200x83xf16, strided<[88, 1]>>)
// CHECK: gpu.launch
// CHECK: %[[LEFT:.*]] = arith.subi %c83, %[[K:.*]] : index
// CHECK: %[[COUNT:.*]] = arith.minui %[[LEFT]], %c8 : index
// CHECK: arith.cmpi ult, %[[K]], %c83 : index
// CHECK: %[[KC:.*]] = arith.minui %[[K]], %c80 : index
// CHECK: %[[SIZE:.*]] = arith.select %{{.*}}, %[[COUNT]], %c0 : index
// CHECK: nvgpu.device_async_copy %[[PAD]][%{{.*}}, %[[KC]]], %{{.*}}[%{{.*}}], 8, %[[SIZE]] {bypassL1}
// B (K x N, rows of 72) is read in place.
// CHECK: nvgpu.device_async_copy %arg1
// CHECK: gpu.terminator
// CHECK: memref.dealloc %[[PAD]] : memref<200x88xf16>
// CHECK-NEXT: return
func.func @odd_rows(%g: memref<200x83xf16>, %w: memref<83x72xf16>,
                    %y: memref<200x72xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%y : memref<200x72xf32>)
  linalg.generic {indexing_maps = [#a, #b, #c],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%g, %w : memref<200x83xf16>, memref<83x72xf16>)
      outs(%y : memref<200x72xf32>) attrs = {tessera.mma = "f16"} {
  ^bb0(%l: f16, %r: f16, %acc: f32):
    %le = arith.extf %l : f16 to f32
    %re = arith.extf %r : f16 to f32
    %p = arith.mulf %le, %re : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}

// Two kernels read the same operand with rows of 83 halves, through two
// equal collapse_shapes (the logits' gradient of a tied head: dx = dy w
// and the weight's gradient dy^T x, here dy x' for brevity): one copy,
// made before the first, freed after the second. Once the operand is
// written in between, the next kernel makes a copy of its own.
// CHECK-LABEL: func.func @shared_copy
// CHECK: %[[PAD:.*]] = memref.alloc() : memref<200x88xf16>
// CHECK: linalg.copy
// CHECK: gpu.launch
// CHECK: nvgpu.device_async_copy %[[PAD]]
// CHECK: gpu.terminator
// CHECK-NOT: memref.dealloc
// CHECK-NOT: linalg.copy
// CHECK: gpu.launch
// CHECK: nvgpu.device_async_copy %[[PAD]]
// CHECK: gpu.terminator
// CHECK: memref.dealloc %[[PAD]] : memref<200x88xf16>
// CHECK: linalg.fill
// CHECK: %[[PAD2:.*]] = memref.alloc() : memref<200x88xf16>
// CHECK: linalg.copy
// CHECK: gpu.launch
// CHECK: nvgpu.device_async_copy %[[PAD2]]
// CHECK: gpu.terminator
// CHECK: memref.dealloc %[[PAD2]] : memref<200x88xf16>
// CHECK-NEXT: return
func.func @shared_copy(%g3: memref<2x100x83xf16>, %w: memref<83x72xf16>,
                       %v: memref<83x64xf16>, %y: memref<200x72xf32>,
                       %z: memref<200x64xf32>, %u: memref<200x64xf32>) {
  %zero = arith.constant 0.0 : f32
  %g = memref.collapse_shape %g3 [[0, 1], [2]] : memref<2x100x83xf16> into memref<200x83xf16>
  linalg.fill ins(%zero : f32) outs(%y : memref<200x72xf32>)
  linalg.generic {indexing_maps = [#a, #b, #c],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%g, %w : memref<200x83xf16>, memref<83x72xf16>)
      outs(%y : memref<200x72xf32>) attrs = {tessera.mma = "f16"} {
  ^bb0(%l: f16, %r: f16, %acc: f32):
    %le = arith.extf %l : f16 to f32
    %re = arith.extf %r : f16 to f32
    %p = arith.mulf %le, %re : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  %g2 = memref.collapse_shape %g3 [[0, 1], [2]] : memref<2x100x83xf16> into memref<200x83xf16>
  linalg.fill ins(%zero : f32) outs(%z : memref<200x64xf32>)
  linalg.generic {indexing_maps = [#a, #b, #c],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%g2, %v : memref<200x83xf16>, memref<83x64xf16>)
      outs(%z : memref<200x64xf32>) attrs = {tessera.mma = "f16"} {
  ^bb0(%l: f16, %r: f16, %acc: f32):
    %le = arith.extf %l : f16 to f32
    %re = arith.extf %r : f16 to f32
    %p = arith.mulf %le, %re : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  %half = arith.constant 1.0 : f16
  linalg.fill ins(%half : f16) outs(%g3 : memref<2x100x83xf16>)
  linalg.fill ins(%zero : f32) outs(%u : memref<200x64xf32>)
  linalg.generic {indexing_maps = [#a, #b, #c],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%g2, %v : memref<200x83xf16>, memref<83x64xf16>)
      outs(%u : memref<200x64xf32>) attrs = {tessera.mma = "f16"} {
  ^bb0(%l: f16, %r: f16, %acc: f32):
    %le = arith.extf %l : f16 to f32
    %re = arith.extf %r : f16 to f32
    %p = arith.mulf %le, %re : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}
