// RUN: tessera-opt %s --pass-pipeline='builtin.module(gpu.module(tessera-gpu-math-to-ptx))' | FileCheck %s

// f32 sqrt and floor become PTX instructions (no libdevice); f64 stays.
gpu.module @kernels {
  // CHECK-LABEL: gpu.func @k
  // CHECK: llvm.inline_asm "sqrt.rn.f32 $0, $1;", "=f,f" %{{.*}} : (f32) -> f32
  // CHECK: llvm.inline_asm "cvt.rmi.f32.f32 $0, $1;", "=f,f"
  // CHECK: math.sqrt %{{.*}} : f64
  gpu.func @k(%x: f32, %y: f64) -> (f32, f64) {
    %0 = math.sqrt %x : f32
    %1 = math.floor %0 : f32
    %2 = math.sqrt %y : f64
    gpu.return %1, %2 : f32, f64
  }
}
