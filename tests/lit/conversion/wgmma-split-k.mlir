// Split-K (WgmmaMatmul.cpp): S blocks share a tile of C, each running K / S
// of its K tiles. Each writes its partial tile to a buffer of S partials,
// then (after a fence and its warpgroup's named barrier) thread 0 of the
// warpgroup counts the arrival on the tile's counter, zeroed by a memset
// before the kernel; a barrier that or-reduces "I was the S-th" tells the
// warpgroup whether it came last, and the last sums the S partials in the
// order of the splits before storing (or running the epilogue).
// RUN: tessera-opt %s --split-input-file --tessera-gpu-tensor-core-matmuls="wgmma wgmma-split-k=4" --canonicalize | FileCheck %s --check-prefix=FORCED
// RUN: tessera-opt %s --split-input-file --tessera-gpu-tensor-core-matmuls="wgmma wgmma-split-k=-1" --canonicalize | FileCheck %s --check-prefix=AUTO
// RUN: tessera-opt %s --split-input-file --tessera-gpu-tensor-core-matmuls="wgmma wgmma-tma wgmma-split-k=2" --canonicalize | FileCheck %s --check-prefix=TMA

#a = affine_map<(m, n, k) -> (m, k)>
#at = affine_map<(m, n, k) -> (k, m)>
#b = affine_map<(m, n, k) -> (k, n)>
#c = affine_map<(m, n, k) -> (m, n)>

// 200 x 256 over K = 1024 (16 K tiles): 2 x 2 tiles of C, 4 splits of 4 K
// tiles. The partials are whole tiles (256 rows); a counter per tile and
// warpgroup.
// FORCED-LABEL: func.func @forced
// FORCED: %[[P:.*]] = memref.alloc() : memref<4x256x256xf32>
// FORCED: %[[N:.*]] = memref.alloc() : memref<8xi32>
// FORCED: gpu.memset %[[N]], %c0_i32 : memref<8xi32>, i32
// FORCED: gpu.launch blocks(%{{.*}}, %{{.*}}, %[[SPLIT:.*]]) in (%{{.*}} = %c2, %{{.*}} = %c2, %{{.*}} = %c4) threads
// The split's 4 K tiles, from K tile 4 x split.
// FORCED: %[[FIRST:.*]] = arith.muli %[[SPLIT]], %c4 : index
// FORCED: scf.for %{{.*}} = %c0 to %c4 step %c1
// FORCED-COUNT-4: nvvm.wgmma.mma_async
// FORCED: vector.store %{{.*}}, %[[P]][%[[SPLIT]], %{{.*}}, %{{.*}}] {alignment = 8 : i64} : memref<4x256x256xf32>, vector<2xf32>
// FORCED: nvvm.memory.barrier <gpu>
// FORCED: nvvm.barrier id = %[[ID:.*]] number_of_threads = %c128_i32
// FORCED: scf.if
// FORCED: %[[OLD:.*]] = memref.atomic_rmw addi %c1_i32, %[[N]][%{{.*}}]
// FORCED: arith.cmpi eq, %[[OLD]], %c3_i32 : i32
// FORCED: %[[LAST:.*]] = llvm.call_intrinsic "llvm.nvvm.barrier.cta.red.or.aligned.count"(%[[ID]], %c128_i32, %{{.*}}) : (i32, i32, i1) -> i1
// FORCED: scf.if %[[LAST]] {
// FORCED: nvvm.memory.barrier <gpu>
// FORCED: scf.for %[[S:.*]] = %c0 to %c4 step %c1 iter_args
// FORCED: vector.load %[[P]][%[[S]], %{{.*}}, %{{.*}}] : memref<4x256x256xf32>, vector<2xf32>
// FORCED: arith.addf
// Rows past M are not stored in C.
// FORCED: scf.if
// FORCED: vector.store %{{.*}}, %arg2[%{{.*}}, %{{.*}}] {alignment = 8 : i64} : memref<200x256xf32>, vector<2xf32>
// FORCED: gpu.terminator
// FORCED: memref.dealloc %[[P]] : memref<4x256x256xf32>
// FORCED: memref.dealloc %[[N]] : memref<8xi32>
// The model plans no split for one tile over 16 K tiles.
// AUTO-LABEL: func.func @forced
// AUTO-NOT: gpu.memset
// AUTO: gpu.launch blocks({{.*}}) in ({{.*}} = %c2, {{.*}} = %c2, {{.*}} = %c1)
// With TMA, the grid walks units of a tile and a split (tiles x splits).
// TMA-LABEL: func.func @forced
// TMA: gpu.memset
// TMA: gpu.launch blocks(%{{.*}}, %{{.*}}, %{{.*}}) in (%{{.*}} = %c8, %{{.*}} = %c1, %{{.*}} = %c1) threads({{.*}}) in ({{.*}} = %c384,
// TMA: nvvm.cp.async.bulk.tensor.shared.cluster.global
// TMA: llvm.call_intrinsic "llvm.nvvm.barrier.cta.red.or.aligned.count"
func.func @forced(%x: memref<200x1024xf16>, %w: memref<1024x256xf16>,
                  %y: memref<200x256xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%y : memref<200x256xf32>)
  linalg.generic {indexing_maps = [#a, #b, #c],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<200x1024xf16>, memref<1024x256xf16>)
      outs(%y : memref<200x256xf32>) attrs = {tessera.mma = "bf16"} {
  ^bb0(%l: f16, %r: f16, %acc: f32):
    %le = arith.extf %l : f16 to f32
    %re = arith.extf %r : f16 to f32
    %p = arith.mulf %le, %re : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}

// -----

#a = affine_map<(m, n, k) -> (m, k)>
#at = affine_map<(m, n, k) -> (k, m)>
#b = affine_map<(m, n, k) -> (k, n)>
#c = affine_map<(m, n, k) -> (m, n)>

// A weight gradient of GPT-2 (C of 768 x 768 over K = 8192 tokens, A read
// M-major): 36 tiles of C would keep 36 of 132 multiprocessors busy. The
// model plans 2 splits of 64 K tiles (72 blocks, one wave; 4 would make
// 144, two waves of 32 K tiles).
// AUTO-LABEL: func.func @weight_gradient
// AUTO: memref.alloc() : memref<2x768x768xf32>
// AUTO: gpu.memset %{{.*}}, %c0_i32 : memref<72xi32>, i32
// AUTO: gpu.launch blocks({{.*}}) in ({{.*}} = %c6, {{.*}} = %c6, {{.*}} = %c2)
// FORCED-LABEL: func.func @weight_gradient
// FORCED: gpu.launch blocks({{.*}}) in ({{.*}} = %c6, {{.*}} = %c6, {{.*}} = %c4)
func.func @weight_gradient(%g: memref<8192x768xf16>, %x: memref<8192x768xf16>,
                           %dw: memref<768x768xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%dw : memref<768x768xf32>)
  linalg.generic {indexing_maps = [#at, #b, #c],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%g, %x : memref<8192x768xf16>, memref<8192x768xf16>)
      outs(%dw : memref<768x768xf32>) attrs = {tessera.mma = "bf16"} {
  ^bb0(%l: f16, %r: f16, %acc: f32):
    %le = arith.extf %l : f16 to f32
    %re = arith.extf %r : f16 to f32
    %p = arith.mulf %le, %re : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}

// -----

#a = affine_map<(m, n, k) -> (m, k)>
#b = affine_map<(m, n, k) -> (k, n)>
#c = affine_map<(m, n, k) -> (m, n)>

// The activations' products (8192 x 768 over K = 768): 384 tiles fill the
// multiprocessors, and 12 K tiles are too few to split. Forced, 4 splits
// of 3 K tiles (the model's minimum of 8 is the model's alone).
// AUTO-LABEL: func.func @activations
// AUTO-NOT: gpu.memset
// AUTO: gpu.launch blocks({{.*}}) in ({{.*}} = %c6, {{.*}} = %c64, {{.*}} = %c1)
// FORCED-LABEL: func.func @activations
// FORCED: gpu.launch blocks({{.*}}) in ({{.*}} = %c6, {{.*}} = %c64, {{.*}} = %c4)
func.func @activations(%x: memref<8192x768xf16>, %w: memref<768x768xf16>,
                       %y: memref<8192x768xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%y : memref<8192x768xf32>)
  linalg.generic {indexing_maps = [#a, #b, #c],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<8192x768xf16>, memref<768x768xf16>)
      outs(%y : memref<8192x768xf32>) attrs = {tessera.mma = "bf16"} {
  ^bb0(%l: f16, %r: f16, %acc: f32):
    %le = arith.extf %l : f16 to f32
    %re = arith.extf %r : f16 to f32
    %p = arith.mulf %le, %re : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}

// -----

#a = affine_map<(m, n, k) -> (m, k)>
#b = affine_map<(m, n, k) -> (k, n)>
#c = affine_map<(m, n, k) -> (m, n)>

// 5 K tiles: a forced 4 does not divide them, so no split.
// FORCED-LABEL: func.func @indivisible
// FORCED-NOT: gpu.memset
// FORCED: gpu.launch blocks({{.*}}) in ({{.*}} = %c1, {{.*}} = %c1, {{.*}} = %c1)
func.func @indivisible(%x: memref<128x320xf16>, %w: memref<320x128xf16>,
                       %y: memref<128x128xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%y : memref<128x128xf32>)
  linalg.generic {indexing_maps = [#a, #b, #c],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<128x320xf16>, memref<320x128xf16>)
      outs(%y : memref<128x128xf32>) attrs = {tessera.mma = "f16"} {
  ^bb0(%l: f16, %r: f16, %acc: f32):
    %le = arith.extf %l : f16 to f32
    %re = arith.extf %r : f16 to f32
    %p = arith.mulf %le, %re : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}
