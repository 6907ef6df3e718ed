// RUN: tessera-opt %s --pass-pipeline='builtin.module(gpu.module(tessera-gpu-math-to-ptx))' | FileCheck %s

// f32/f64 sqrt and floor become PTX instructions (no libdevice); f16 stays.
gpu.module @kernels {
  // CHECK-LABEL: gpu.func @k
  // CHECK: llvm.inline_asm "sqrt.rn.f32 $0, $1;", "=f,f" %{{.*}} : (f32) -> f32
  // CHECK: llvm.inline_asm "cvt.rmi.f32.f32 $0, $1;", "=f,f"
  // CHECK: llvm.inline_asm "sqrt.rn.f64 $0, $1;", "=d,d" %{{.*}} : (f64) -> f64
  // CHECK: math.sqrt %{{.*}} : f16
  gpu.func @k(%x: f32, %y: f64, %z: f16) -> (f32, f64, f16) {
    %0 = math.sqrt %x : f32
    %1 = math.floor %0 : f32
    %2 = math.sqrt %y : f64
    %3 = math.sqrt %z : f16
    gpu.return %1, %2, %3 : f32, f64, f16
  }
}
