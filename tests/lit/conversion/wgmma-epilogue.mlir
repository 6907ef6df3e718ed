// The element-wise consumer of a warpgroup-MMA matmul runs in the
// kernel's epilogue on the accumulators: C is neither stored nor
// allocated. Consumers that cannot move there (C read twice, an operand
// of the matmul written before the consumer) stay, and C is stored.
// RUN: tessera-opt %s --tessera-gpu-tensor-core-matmuls="wgmma" | FileCheck %s

#a = affine_map<(m, n, k) -> (m, k)>
#bt = affine_map<(m, n, k) -> (n, k)>
#c = affine_map<(m, n, k) -> (m, n)>
#id3 = affine_map<(b, t, n) -> (b, t, n)>
#bias3 = affine_map<(b, t, n) -> (n)>
#id2 = affine_map<(m, n) -> (m, n)>
#row2 = affine_map<(m, n) -> (m)>

// A linear layer's bias, read through C's expand_shape, and the result
// rounded to a bf16 operand (f16 bits) in a second output: the epilogue
// loads the bias and stores both outputs two columns at a time.
// CHECK-LABEL: func.func @bias_round
// CHECK-NOT: memref.alloc() {{.*}} : memref<256x128xf32>
// CHECK-NOT: linalg.generic
// CHECK: gpu.launch
// CHECK: nvvm.wgmma.mma_async
// CHECK-NOT: vector.store {{.*}} : memref<256x128xf32>
// CHECK: %[[BIAS:.*]] = vector.load %{{.*}}[%{{.*}}] {alignment = 8 : i64} : memref<128xf32>, vector<2xf32>
// CHECK: %[[B0:.*]] = vector.extract %[[BIAS]][0] : f32 from vector<2xf32>
// CHECK: arith.addf %{{.*}}, %[[B0]] : f32
// CHECK: arith.truncf %{{.*}} : f32 to bf16
// CHECK: vector.store %{{.*}}, %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}] {alignment = 8 : i64} : memref<2x128x128xf32>, vector<2xf32>
// CHECK: vector.store %{{.*}}, %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}] {alignment = 4 : i64} : memref<2x128x128xf16>, vector<2xf16>
// CHECK: gpu.terminator
// CHECK-NOT: memref.dealloc
// CHECK: return
func.func @bias_round(%x: memref<256x64xf16>, %w: memref<128x64xf16>,
                      %bias: memref<128xf32>, %y: memref<2x128x128xf32>,
                      %yh: memref<2x128x128xf16>) {
  %zero = arith.constant 0.0 : f32
  %c = memref.alloc() : memref<256x128xf32>
  linalg.fill ins(%zero : f32) outs(%c : memref<256x128xf32>)
  linalg.generic {indexing_maps = [#a, #bt, #c],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<256x64xf16>, memref<128x64xf16>)
      outs(%c : memref<256x128xf32>) attrs = {tessera.mma = "f16"} {
  ^bb0(%l: f16, %r: f16, %acc: f32):
    %le = arith.extf %l : f16 to f32
    %re = arith.extf %r : f16 to f32
    %p = arith.mulf %le, %re : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  %c3 = memref.expand_shape %c [[0, 1], [2]] output_shape [2, 128, 128]
      : memref<256x128xf32> into memref<2x128x128xf32>
  linalg.generic {indexing_maps = [#id3, #bias3, #id3, #id3],
                  iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%c3, %bias : memref<2x128x128xf32>, memref<128xf32>)
      outs(%y, %yh : memref<2x128x128xf32>, memref<2x128x128xf16>) {
  ^bb0(%v: f32, %b: f32, %o: f32, %oh: f16):
    %s = arith.addf %v, %b : f32
    %t = arith.truncf %s : f32 to bf16
    %h = arith.bitcast %t : bf16 to f16
    linalg.yield %s, %h : f32, f16
  }
  memref.dealloc %c : memref<256x128xf32>
  return
}

// A consumer that reads a per-row value and its own indices: scalar loads
// for the row operand (not indexed by the columns), linalg.index becomes
// the kernel's row.
// CHECK-LABEL: func.func @row_scale
// CHECK-NOT: linalg.generic
// CHECK: nvvm.wgmma.mma_async
// CHECK: memref.load %{{.*}}[%{{.*}}] : memref<128xf32>
// CHECK: arith.index_cast
// CHECK: vector.store {{.*}} : memref<128x128xf32>, vector<2xf32>
func.func @row_scale(%x: memref<128x64xf16>, %w: memref<128x64xf16>,
                     %s: memref<128xf32>, %y: memref<128x128xf32>) {
  %zero = arith.constant 0.0 : f32
  %c = memref.alloc() : memref<128x128xf32>
  linalg.fill ins(%zero : f32) outs(%c : memref<128x128xf32>)
  linalg.generic {indexing_maps = [#a, #bt, #c],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<128x64xf16>, memref<128x64xf16>)
      outs(%c : memref<128x128xf32>) attrs = {tessera.mma = "f16"} {
  ^bb0(%l: f16, %r: f16, %acc: f32):
    %le = arith.extf %l : f16 to f32
    %re = arith.extf %r : f16 to f32
    %p = arith.mulf %le, %re : f32
    %q = arith.addf %acc, %p : f32
    linalg.yield %q : f32
  }
  linalg.generic {indexing_maps = [#id2, #row2, #id2],
                  iterator_types = ["parallel", "parallel"]}
      ins(%c, %s : memref<128x128xf32>, memref<128xf32>)
      outs(%y : memref<128x128xf32>) {
  ^bb0(%v: f32, %f: f32, %o: f32):
    %i = linalg.index 0 : index
    %ii = arith.index_cast %i : index to i32
    %fi = arith.sitofp %ii : i32 to f32
    %m = arith.mulf %v, %f : f32
    %r = arith.addf %m, %fi : f32
    linalg.yield %r : f32
  }
  memref.dealloc %c : memref<128x128xf32>
  return
}

// C read by two ops: stored, both consumers stay.
// CHECK-LABEL: func.func @two_readers
// CHECK: memref.alloc() : memref<128x128xf32>
// CHECK: nvvm.wgmma.mma_async
// CHECK: vector.store {{.*}} : memref<128x128xf32>, vector<2xf32>
// CHECK: gpu.terminator
// CHECK: linalg.generic
// CHECK: linalg.generic
func.func @two_readers(%x: memref<128x64xf16>, %w: memref<128x64xf16>,
                       %y: memref<128x128xf32>, %z: memref<128x128xf32>) {
  %zero = arith.constant 0.0 : f32
  %c = memref.alloc() : memref<128x128xf32>
  linalg.fill ins(%zero : f32) outs(%c : memref<128x128xf32>)
  linalg.generic {indexing_maps = [#a, #bt, #c],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<128x64xf16>, memref<128x64xf16>)
      outs(%c : memref<128x128xf32>) attrs = {tessera.mma = "f16"} {
  ^bb0(%l: f16, %r: f16, %acc: f32):
    %le = arith.extf %l : f16 to f32
    %re = arith.extf %r : f16 to f32
    %p = arith.mulf %le, %re : f32
    %q = arith.addf %acc, %p : f32
    linalg.yield %q : f32
  }
  linalg.generic {indexing_maps = [#id2, #id2],
                  iterator_types = ["parallel", "parallel"]}
      ins(%c : memref<128x128xf32>) outs(%y : memref<128x128xf32>) {
  ^bb0(%v: f32, %o: f32):
    %n = arith.negf %v : f32
    linalg.yield %n : f32
  }
  linalg.generic {indexing_maps = [#id2, #id2],
                  iterator_types = ["parallel", "parallel"]}
      ins(%c : memref<128x128xf32>) outs(%z : memref<128x128xf32>) {
  ^bb0(%v: f32, %o: f32):
    %n = arith.mulf %v, %v : f32
    linalg.yield %n : f32
  }
  memref.dealloc %c : memref<128x128xf32>
  return
}

// The matmul's A is overwritten before the consumer: moving the matmul
// there would read the new values. Not fused.
// CHECK-LABEL: func.func @operand_overwritten
// CHECK: nvvm.wgmma.mma_async
// CHECK: vector.store {{.*}} : memref<128x128xf32>, vector<2xf32>
// CHECK: gpu.terminator
// CHECK: linalg.fill
// CHECK: linalg.generic
func.func @operand_overwritten(%x: memref<128x64xf16>, %w: memref<128x64xf16>,
                               %y: memref<128x128xf32>) {
  %zero = arith.constant 0.0 : f32
  %zh = arith.constant 0.0 : f16
  %c = memref.alloc() : memref<128x128xf32>
  linalg.fill ins(%zero : f32) outs(%c : memref<128x128xf32>)
  linalg.generic {indexing_maps = [#a, #bt, #c],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<128x64xf16>, memref<128x64xf16>)
      outs(%c : memref<128x128xf32>) attrs = {tessera.mma = "f16"} {
  ^bb0(%l: f16, %r: f16, %acc: f32):
    %le = arith.extf %l : f16 to f32
    %re = arith.extf %r : f16 to f32
    %p = arith.mulf %le, %re : f32
    %q = arith.addf %acc, %p : f32
    linalg.yield %q : f32
  }
  %xs = memref.subview %x[0, 0] [64, 64] [1, 1]
      : memref<128x64xf16> to memref<64x64xf16, strided<[64, 1]>>
  linalg.fill ins(%zh : f16) outs(%xs : memref<64x64xf16, strided<[64, 1]>>)
  linalg.generic {indexing_maps = [#id2, #id2],
                  iterator_types = ["parallel", "parallel"]}
      ins(%c : memref<128x128xf32>) outs(%y : memref<128x128xf32>) {
  ^bb0(%v: f32, %o: f32):
    %n = arith.negf %v : f32
    linalg.yield %n : f32
  }
  memref.dealloc %c : memref<128x128xf32>
  return
}

// One consumer of two matmuls' results (a gradient summed over two
// uses): the first matmul's epilogue runs it, loading the second's
// result, which the second matmul stores before.
// CHECK-LABEL: func.func @two_matmuls
// CHECK: gpu.launch
// CHECK: nvvm.wgmma.mma_async
// CHECK: vector.store {{.*}} : memref<128x128xf32>, vector<2xf32>
// CHECK: gpu.terminator
// CHECK: gpu.launch
// CHECK: nvvm.wgmma.mma_async
// CHECK: vector.load {{.*}} : memref<128x128xf32>, vector<2xf32>
// CHECK: arith.addf
// CHECK: vector.store {{.*}} : memref<128x128xf32>, vector<2xf32>
// CHECK: gpu.terminator
// CHECK-NOT: linalg.generic
// CHECK: return
func.func @two_matmuls(%x: memref<128x64xf16>, %w: memref<128x64xf16>,
                       %x2: memref<128x64xf16>, %y: memref<128x128xf32>) {
  %zero = arith.constant 0.0 : f32
  %c = memref.alloc() : memref<128x128xf32>
  linalg.fill ins(%zero : f32) outs(%c : memref<128x128xf32>)
  linalg.generic {indexing_maps = [#a, #bt, #c],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<128x64xf16>, memref<128x64xf16>)
      outs(%c : memref<128x128xf32>) attrs = {tessera.mma = "f16"} {
  ^bb0(%l: f16, %r: f16, %acc: f32):
    %le = arith.extf %l : f16 to f32
    %re = arith.extf %r : f16 to f32
    %p = arith.mulf %le, %re : f32
    %q = arith.addf %acc, %p : f32
    linalg.yield %q : f32
  }
  %d = memref.alloc() : memref<128x128xf32>
  linalg.fill ins(%zero : f32) outs(%d : memref<128x128xf32>)
  linalg.generic {indexing_maps = [#a, #bt, #c],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x2, %w : memref<128x64xf16>, memref<128x64xf16>)
      outs(%d : memref<128x128xf32>) attrs = {tessera.mma = "f16"} {
  ^bb0(%l: f16, %r: f16, %acc: f32):
    %le = arith.extf %l : f16 to f32
    %re = arith.extf %r : f16 to f32
    %p = arith.mulf %le, %re : f32
    %q = arith.addf %acc, %p : f32
    linalg.yield %q : f32
  }
  linalg.generic {indexing_maps = [#id2, #id2, #id2],
                  iterator_types = ["parallel", "parallel"]}
      ins(%c, %d : memref<128x128xf32>, memref<128x128xf32>)
      outs(%y : memref<128x128xf32>) {
  ^bb0(%u: f32, %v: f32, %o: f32):
    %s = arith.addf %u, %v : f32
    linalg.yield %s : f32
  }
  memref.dealloc %c : memref<128x128xf32>
  memref.dealloc %d : memref<128x128xf32>
  return
}

// The consumer's output (the bias sum, kept for a later reader) is read in
// turn by an element-wise op (a relu, as the GELU after GPT-2's fc
// matmul): the relu joins the consumer, and the epilogue stores both.
// CHECK-LABEL: func.func @bias_then_relu
// CHECK: %[[SUM:.*]] = memref.alloc() : memref<2x128x128xf32>
// CHECK: %[[RELU:.*]] = memref.alloc() : memref<2x128x128xf32>
// CHECK: gpu.launch
// CHECK: nvvm.wgmma.mma_async
// CHECK: arith.addf
// CHECK: arith.maximumf
// CHECK: vector.store %{{.*}}, %[[SUM]]
// CHECK: vector.store %{{.*}}, %[[RELU]]
// CHECK: gpu.terminator
// CHECK-NOT: linalg.generic
// CHECK: return %[[SUM]], %[[RELU]]
func.func @bias_then_relu(%x: memref<256x64xf16>, %w: memref<128x64xf16>,
                          %bias: memref<128xf32>)
    -> (memref<2x128x128xf32>, memref<2x128x128xf32>) {
  %zero = arith.constant 0.0 : f32
  %c = memref.alloc() : memref<256x128xf32>
  linalg.fill ins(%zero : f32) outs(%c : memref<256x128xf32>)
  linalg.generic {indexing_maps = [#a, #bt, #c],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<256x64xf16>, memref<128x64xf16>)
      outs(%c : memref<256x128xf32>) attrs = {tessera.mma = "f16"} {
  ^bb0(%l: f16, %r: f16, %acc: f32):
    %le = arith.extf %l : f16 to f32
    %re = arith.extf %r : f16 to f32
    %p = arith.mulf %le, %re : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  %c3 = memref.expand_shape %c [[0, 1], [2]] output_shape [2, 128, 128]
      : memref<256x128xf32> into memref<2x128x128xf32>
  %sum = memref.alloc() : memref<2x128x128xf32>
  linalg.generic {indexing_maps = [#id3, #bias3, #id3],
                  iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%c3, %bias : memref<2x128x128xf32>, memref<128xf32>)
      outs(%sum : memref<2x128x128xf32>) {
  ^bb0(%v: f32, %b: f32, %o: f32):
    %s = arith.addf %v, %b : f32
    linalg.yield %s : f32
  }
  memref.dealloc %c : memref<256x128xf32>
  %relu = memref.alloc() : memref<2x128x128xf32>
  linalg.generic {indexing_maps = [#id3, #id3],
                  iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%sum : memref<2x128x128xf32>) outs(%relu : memref<2x128x128xf32>) {
  ^bb0(%v: f32, %o: f32):
    %m = arith.maximumf %v, %zero : f32
    linalg.yield %m : f32
  }
  return %sum, %relu : memref<2x128x128xf32>, memref<2x128x128xf32>
}
