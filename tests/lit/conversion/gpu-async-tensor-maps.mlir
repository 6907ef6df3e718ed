// gpu-async-region makes the host wait for the stream before a call it
// cannot see through and starts a new chain after it. Between the TMA
// descriptor calls (tesseraTensorMap2D: host-only, reads no device memory)
// tessera-gpu-async-tensor-maps removes that wait: the next launch depends
// on the previous one's token. Any other call keeps its waits.
// RUN: tessera-opt %s --pass-pipeline="builtin.module(func.func(gpu-async-region,tessera-gpu-async-tensor-maps))" | FileCheck %s

// CHECK-LABEL: func.func @f
// CHECK: %[[T0:.*]] = gpu.wait async
// CHECK: %[[T1:.*]] = gpu.launch_func async [%[[T0]]]
// CHECK-NOT: gpu.wait
// CHECK: %[[M:.*]] = call @tesseraTensorMap2D
// CHECK: arith.addi
// CHECK: call @tesseraTensorMap2D
// CHECK-NOT: gpu.wait
// CHECK: %[[T2:.*]] = gpu.launch_func async [%[[T1]]] {{.*}} args(%[[M]] : i64)
// CHECK: gpu.wait [%[[T2]]]
// CHECK: call @other
// CHECK: %[[T3:.*]] = gpu.wait async
// CHECK: gpu.launch_func async [%[[T3]]]
module attributes {gpu.container_module} {
  func.func private @tesseraTensorMap2D(i64, i64, i64, i64, i64, i64, i64) -> i64
  func.func private @other(i64) -> i64
  gpu.module @m {
    gpu.func @k(%x: i64) kernel { gpu.return }
  }
  func.func @f(%a: i64) {
    %c1 = arith.constant 1 : index
    gpu.launch_func @m::@k blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%a : i64)
    %m = func.call @tesseraTensorMap2D(%a, %a, %a, %a, %a, %a, %a) : (i64, i64, i64, i64, i64, i64, i64) -> i64
    %b = arith.addi %a, %a : i64
    %n = func.call @tesseraTensorMap2D(%b, %a, %a, %a, %a, %a, %a) : (i64, i64, i64, i64, i64, i64, i64) -> i64
    gpu.launch_func @m::@k blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%m : i64)
    %o = func.call @other(%a) : (i64) -> i64
    gpu.launch_func @m::@k blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%o : i64)
    return
  }
}
