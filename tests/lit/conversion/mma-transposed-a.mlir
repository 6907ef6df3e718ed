// A matmul that reads A as K x M (M-major: a weight's gradient x^T dy
// reading x in place). The sm_90a kernel copies A's tiles M-major into
// the 128-byte-swizzled layout and sets wgmma's imm-trans-a (layout col);
// mma.sync reads A K-major only, so without wgmma A gets an M x K copy,
// made before the accumulator's zero fill and freed after the kernel.
// RUN: tessera-opt %s --tessera-gpu-tensor-core-matmuls="wgmma" | FileCheck %s --check-prefix=WGMMA
// RUN: tessera-opt %s --tessera-gpu-tensor-core-matmuls | FileCheck %s --check-prefix=SYNC

#km = affine_map<(m, n, k) -> (k, m)>
#kn = affine_map<(m, n, k) -> (k, n)>
#c = affine_map<(m, n, k) -> (m, n)>

// WGMMA-LABEL: func.func @dw
// WGMMA-NOT: linalg.transpose
// WGMMA: gpu.launch
// WGMMA-COUNT-4: nvgpu.device_async_copy %arg0[
// WGMMA: nvvm.wgmma.mma_async {{.*}} A[<bf16>, <one>, <col>], B[<bf16>, <one>, <row>]
// WGMMA-NOT: memref.dealloc
// WGMMA: return

// SYNC-LABEL: func.func @dw
// SYNC: %[[COPY:.*]] = memref.alloc() : memref<128x256xf16>
// SYNC: linalg.transpose ins(%arg0 : memref<256x128xf16>) outs(%[[COPY]] : memref<128x256xf16>) permutation = [1, 0]
// SYNC-NOT: linalg.fill
// SYNC: gpu.launch
// SYNC: nvvm.mma.sync
// SYNC: memref.dealloc %[[COPY]] : memref<128x256xf16>
// SYNC: return
func.func @dw(%x: memref<256x128xf16>, %dy: memref<256x128xf16>,
              %dw: memref<128x128xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%dw : memref<128x128xf32>)
  linalg.generic {indexing_maps = [#km, #kn, #c],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %dy : memref<256x128xf16>, memref<256x128xf16>)
      outs(%dw : memref<128x128xf32>) attrs = {tessera.mma = "bf16"} {
  ^bb0(%a: f16, %b: f16, %acc: f32):
    %ab = arith.bitcast %a : f16 to bf16
    %bb = arith.bitcast %b : f16 to bf16
    %a32 = arith.extf %ab : bf16 to f32
    %b32 = arith.extf %bb : bf16 to f32
    %p = arith.mulf %a32, %b32 : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}
