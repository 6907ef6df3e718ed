// RUN: tessera-opt --tessera-approximate-math %s | FileCheck %s

// f32 tanh/exp/log/erf become arithmetic (no libm calls left in the loops).
// CHECK-LABEL: func.func @f32_ops
// CHECK-NOT: math.tanh
// CHECK-NOT: math.exp
// CHECK-NOT: math.log
// CHECK-NOT: math.erf
// CHECK: return
func.func @f32_ops(%x: f32, %v: vector<8xf32>) -> (f32, vector<8xf32>) {
  %0 = math.tanh %x : f32
  %1 = math.exp %0 : f32
  %2 = math.log %1 : f32
  %3 = math.erf %2 : f32
  %4 = math.tanh %v : vector<8xf32>
  return %3, %4 : f32, vector<8xf32>
}

// f64 keeps the exact library functions.
// CHECK-LABEL: func.func @f64_ops
// CHECK: math.tanh
// CHECK: math.exp
func.func @f64_ops(%x: f64) -> f64 {
  %0 = math.tanh %x : f64
  %1 = math.exp %0 : f64
  return %1 : f64
}
