// With wgmma-group-rows=G the blocks walk the tiles of C in groups of G
// rows of tiles, column by column within a group (the last group has the
// rows left): block id t = y * tilesN + x, in the order blocks start, is
// tile (G * (t / (G tilesN)) + (t % (G tilesN)) % rows, (t % (G tilesN)) / rows).
// Here 5 x 2 tiles in groups of 2: rows 0-1, 2-3, then row 4 alone.
// RUN: tessera-opt %s --tessera-gpu-tensor-core-matmuls="wgmma wgmma-group-rows=2" --canonicalize | FileCheck %s
// RUN: tessera-opt %s --tessera-gpu-tensor-core-matmuls="wgmma" --canonicalize | FileCheck %s --check-prefix=ROWS

// CHECK: gpu.launch blocks(%[[X:[a-z0-9]+]], %[[Y:[a-z0-9]+]], %{{.*}}) in (%{{.*}} = %c2, %{{.*}} = %c5, %{{.*}} = %c1)
// CHECK: %[[YN:.*]] = arith.muli %[[Y]], %c2 : index
// CHECK: %[[T:.*]] = arith.addi %[[YN]], %[[X]] : index
// CHECK: %[[GROUP:.*]] = arith.divui %[[T]], %c4 : index
// CHECK: %[[IN:.*]] = arith.remui %[[T]], %c4 : index
// CHECK: %[[FIRST:.*]] = arith.muli %[[GROUP]], %c2 : index
// CHECK: %[[LEFT:.*]] = arith.subi %c5, %[[FIRST]] : index
// CHECK: %[[GROWS:.*]] = arith.minui %[[LEFT]], %c2 : index
// CHECK: %[[R:.*]] = arith.remui %[[IN]], %[[GROWS]] : index
// CHECK: %[[ROW:.*]] = arith.addi %[[FIRST]], %[[R]] : index
// CHECK: %[[COL:.*]] = arith.divui %[[IN]], %[[GROWS]] : index
// CHECK: arith.muli %[[ROW]], %c128 : index
// CHECK: arith.muli %[[COL]], %c128 : index
// Row by row (the pass's default): the block ids are the tile's.
// ROWS: gpu.launch blocks(%[[X:[a-z0-9]+]], %[[Y:[a-z0-9]+]], %{{.*}}) in
// ROWS-NOT: arith.minui
// ROWS: arith.muli %[[X]], %c128 : index
// ROWS: arith.muli %[[Y]], %c128 : index

#a = affine_map<(m, n, k) -> (m, k)>
#b = affine_map<(m, n, k) -> (k, n)>
#c = affine_map<(m, n, k) -> (m, n)>

func.func @grouped(%x: memref<640x64xf16>, %w: memref<64x256xf16>,
                   %y: memref<640x256xf32>) {
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%y : memref<640x256xf32>)
  linalg.generic {indexing_maps = [#a, #b, #c],
                  iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : memref<640x64xf16>, memref<64x256xf16>)
      outs(%y : memref<640x256xf32>) attrs = {tessera.mma = "f16"} {
  ^bb0(%l: f16, %r: f16, %acc: f32):
    %le = arith.extf %l : f16 to f32
    %re = arith.extf %r : f16 to f32
    %p = arith.mulf %le, %re : f32
    %s = arith.addf %acc, %p : f32
    linalg.yield %s : f32
  }
  return
}
