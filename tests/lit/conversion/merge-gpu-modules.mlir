// RUN: tessera-opt %s --tessera-merge-gpu-modules | FileCheck %s

// Two outlined kernels with the same name end up in one gpu.module under
// their modules' (unique) names, followed by the .tsr file and line they
// came from when they have one, and the launches follow them.
// CHECK: gpu.module @f_kernel
// CHECK: gpu.func @f_kernel(
// CHECK: gpu.func @f_kernel_0_nn_61(
// CHECK-NOT: gpu.module
// CHECK: gpu.launch_func @f_kernel::@f_kernel
// CHECK: gpu.launch_func @f_kernel::@f_kernel_0_nn_61
module attributes {gpu.container_module} {
  gpu.module @f_kernel {
    gpu.func @f_kernel() kernel { gpu.return }
  }
  gpu.module @f_kernel_0 {
    gpu.func @f_kernel() kernel { gpu.return } loc("/src/stdlib/nn.tsr":61:7)
  }
  func.func @f() {
    %c1 = arith.constant 1 : index
    gpu.launch_func @f_kernel::@f_kernel blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1)
    gpu.launch_func @f_kernel_0::@f_kernel blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1)
    return
  }
}
