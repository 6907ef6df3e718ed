// With wgmma-tma, the warpgroup-MMA kernel loads through TMA: the host asks
// the runtime for each operand's descriptor (tesseraTensorMap2D: address,
// rows, logical columns, row stride in bytes, box rows and columns, bf16),
// and the kernel's 384 threads split into a producer warpgroup (thread 0
// waits for a free stage, announces its bytes on the stage's `full`
// barrier and issues the bulk copies) and two consumer warpgroups (wait on
// `full`, wgmma, release the previous stage on `empty`, one arrival per
// warp). Operands TMA cannot read (an address not 16-byte aligned) keep
// the cp.async kernel.
// RUN: tessera-opt %s --tessera-gpu-tensor-core-matmuls="wgmma wgmma-tma" --canonicalize | FileCheck %s

#a = affine_map<(m, n, k) -> (m, k)>
#b = affine_map<(m, n, k) -> (k, n)>
#bt = affine_map<(m, n, k) -> (n, k)>
#c = affine_map<(m, n, k) -> (m, n)>

// CHECK: func.func private @tesseraTensorMap2D(i64, i64, i64, i64, i64, i64, i64) -> i64

// A (200 x 72) in boxes of 128 rows x 64 columns; B (N x K: 83 x 72) in
// boxes of 128 x 64; bf16. Partial tiles need nothing: TMA reads zeros
// past the operands.
// CHECK-LABEL: func.func @n_by_k
// CHECK: %[[A:.*]] = call @tesseraTensorMap2D(%{{.*}}, %c200_i64, %c72_i64, %c144_i64, %c128_i64, %c64_i64, %c1_i64)
// CHECK: %[[B:.*]] = call @tesseraTensorMap2D(%{{.*}}, %c83_i64, %c72_i64, %c144_i64, %c128_i64, %c64_i64, %c1_i64)
// Two tiles of C (one of 128 columns, two of 128 rows), a block each, in a
// one-dimensional grid; each block loops over the tiles from its index in
// steps of the grid size (once, here).
// CHECK-NOT: tesseraMultiprocessorCount
// CHECK: gpu.launch blocks(%[[BX:.*]], %{{.*}}, %{{.*}}) in (%[[GX:.*]] = %c2, {{.*}} = %c1, {{.*}} = %c1) threads({{.*}}) in ({{.*}} = %c384, {{.*}} = %c1, {{.*}} = %c1)
// Four stages: full barriers with one arrival, empty ones with eight.
// CHECK-COUNT-4: nvvm.mbarrier.init %{{.*}}, %c1_i32
// CHECK-NOT: nvvm.mbarrier.init %{{.*}}, %c1_i32
// CHECK: nvvm.fence.mbarrier.init
// CHECK: gpu.barrier
// CHECK: nvvm.setmaxregister  decrease 40
// CHECK: %[[PA:.*]] = llvm.inttoptr %[[A]] : i64 to !llvm.ptr
// CHECK: %[[PB:.*]] = llvm.inttoptr %[[B]] : i64 to !llvm.ptr
// CHECK: nvvm.fence.proxy.acquire <gpu> %[[PA]]
// CHECK: scf.for %{{.*}} = %[[BX]] to %c2 step %[[GX]]
// CHECK: scf.for
// CHECK: nvvm.mbarrier.try_wait.parity
// CHECK: nvvm.mbarrier.arrive.expect_tx %[[FULL:.*]], %c32768_i32
// CHECK: nvvm.cp.async.bulk.tensor.shared.cluster.global %{{.*}}, %[[PA]], %[[FULL]], box[%{{.*}}, %{{.*}}]
// CHECK: nvvm.cp.async.bulk.tensor.shared.cluster.global %{{.*}}, %[[PB]], %[[FULL]], box[%{{.*}}, %{{.*}}]
// CHECK-NOT: nvvm.cp.async.bulk.tensor
// CHECK: } else {
// CHECK: nvvm.setmaxregister  increase 232
// CHECK: scf.for %{{.*}} = %[[BX]] to %c2 step %[[GX]]
// CHECK: scf.for
// CHECK: nvvm.mbarrier.try_wait.parity
// CHECK-COUNT-4: nvvm.wgmma.mma_async
// CHECK: nvvm.wgmma.wait.group.sync.aligned 1
// CHECK: scf.if
// CHECK: nvvm.mbarrier.arrive
// After the last K tile, its stage is released too (for the block's next
// tile of C).
// CHECK: nvvm.wgmma.wait.group.sync.aligned 0
// CHECK: scf.if
// CHECK: nvvm.mbarrier.arrive
// CHECK-NOT: nvgpu.device_async_copy
// CHECK: return
func.func @n_by_k(%x: memref<200x72xf16>, %w: memref<83x72xf16>,
                  %y: memref<200x83xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%y : memref<200x83xf32>)
  linalg.generic {indexing_maps = [#a, #bt, #c],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<200x72xf16>, memref<83x72xf16>)
      outs(%y : memref<200x83xf32>) attrs = {tessera.mma = "bf16"} {
  ^bb0(%l: f16, %r: f16, %acc: f32):
    %le = arith.extf %l : f16 to f32
    %re = arith.extf %r : f16 to f32
    %p = arith.mulf %le, %re : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}

// A's rows (83 halves) are not whole 16-byte pieces: its descriptor is the
// padded copy's (rows 176 bytes apart) with 83 columns, so the padding
// reads as zeros. B (K x N, N-major) in boxes of 64 x 64: two per stage.
// CHECK-LABEL: func.func @padded_k_by_n
// CHECK: %[[PAD:.*]] = memref.alloc() : memref<200x88xf16>
// CHECK: linalg.copy
// CHECK: memref.extract_aligned_pointer_as_index %[[PAD]]
// CHECK: call @tesseraTensorMap2D(%{{.*}}, %c200_i64, %c83_i64, %c176_i64, %c128_i64, %c64_i64, %c0_i64)
// CHECK: call @tesseraTensorMap2D(%{{.*}}, %c83_i64, %c256_i64, %c512_i64, %c64_i64, %c64_i64, %c0_i64)
// CHECK: nvvm.mbarrier.arrive.expect_tx
// CHECK-COUNT-3: nvvm.cp.async.bulk.tensor.shared.cluster.global
// CHECK-NOT: nvvm.cp.async.bulk.tensor
// CHECK: memref.dealloc %[[PAD]] : memref<200x88xf16>
func.func @padded_k_by_n(%g: memref<200x83xf16>, %w: memref<83x256xf16>,
                         %y: memref<200x256xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%y : memref<200x256xf32>)
  linalg.generic {indexing_maps = [#a, #b, #c],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%g, %w : memref<200x83xf16>, memref<83x256xf16>)
      outs(%y : memref<200x256xf32>) attrs = {tessera.mma = "f16"} {
  ^bb0(%l: f16, %r: f16, %acc: f32):
    %le = arith.extf %l : f16 to f32
    %re = arith.extf %r : f16 to f32
    %p = arith.mulf %le, %re : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}

// A view 8 bytes into its buffer: no descriptor can start there, so the
// kernel is the cp.async one (256 threads).
// CHECK-LABEL: func.func @misaligned
// CHECK-NOT: call @tesseraTensorMap2D
// CHECK: threads({{.*}}) in ({{.*}} = %c256,
// CHECK: nvgpu.device_async_copy
// CHECK-NOT: nvvm.cp.async.bulk.tensor
// CHECK: return
func.func @misaligned(%buf: memref<128x136xf16>, %w: memref<128x128xf16>,
                      %y: memref<128x128xf32>) {
  %x = memref.subview %buf[0, 4] [128, 128] [1, 1]
      : memref<128x136xf16> to memref<128x128xf16, strided<[136, 1], offset: 4>>
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%y : memref<128x128xf32>)
  linalg.generic {indexing_maps = [#a, #bt, #c],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<128x128xf16, strided<[136, 1], offset: 4>>,
                   memref<128x128xf16>)
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

// With wgmma-persistent the grid has one block per multiprocessor (at most
// one per tile), asked of the runtime before the launch.
// RUN: tessera-opt %s --tessera-gpu-tensor-core-matmuls="wgmma wgmma-tma wgmma-persistent" --canonicalize | FileCheck %s --check-prefix=PERSISTENT
// PERSISTENT-LABEL: func.func @n_by_k
// PERSISTENT: %[[SMS:.*]] = call @tesseraMultiprocessorCount() : () -> i64
// PERSISTENT: %[[N:.*]] = arith.index_castui %[[SMS]] : i64 to index
// PERSISTENT: %[[GRID:.*]] = arith.minui %[[N]], %c2 : index
// PERSISTENT: gpu.launch blocks(%{{.*}}) in (%{{.*}} = %[[GRID]], %{{.*}} = %c1, %{{.*}} = %c1) threads
