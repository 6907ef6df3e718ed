// RUN: tessera-opt %s --tessera-mixed-precision=format=bf16 | FileCheck %s
// RUN: tessera-opt %s --tessera-mixed-precision=format=bf16 | tessera-opt --tessera-autodiff | FileCheck %s --check-prefix=GRAD

// The product's inputs (the parameter's use, not the parameter) and its
// output are rounded; the norm-free rest stays f32.
// CHECK-LABEL: func.func @loss
// CHECK: %[[X:.*]] = precision.round %arg0 {format = "bf16"}
// CHECK: %[[W:.*]] = precision.round %arg2 {format = "bf16"}
// CHECK: %[[B:.*]] = precision.round %arg3 {format = "bf16"}
// CHECK: %[[Y:.*]] = nn.linear %[[X]], %[[W]], %[[B]]
// CHECK: %[[R:.*]] = precision.round %[[Y]] {format = "bf16"}
// CHECK: nn.cross_entropy %[[R]], %arg1
// The gradient of a rounding is the rounded gradient; the parameter's
// gradient (the master weight's) is f32.
// GRAD-LABEL: func.func @train_step
// GRAD-SAME: -> (tensor<f32> {tessera.output = "loss"}, tensor<3x4xf32> {tessera.output = "grad.w"}, tensor<3xf32> {tessera.output = "grad.b"})
// GRAD: nn.cross_entropy_grad
// GRAD: precision.round %{{.*}} {format = "bf16"} : tensor<2x3xf32>
func.func @loss(%x: tensor<2x4xf32> {tessera.input = "x"}, %y: tensor<2xi32> {tessera.input = "y"},
                %w: tensor<3x4xf32> {tessera.param = "w"}, %b: tensor<3xf32> {tessera.param = "b"}) -> tensor<f32> {
  %0 = nn.linear %x, %w, %b : (tensor<2x4xf32>, tensor<3x4xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  %1 = nn.cross_entropy %0, %y : (tensor<2x3xf32>, tensor<2xi32>) -> tensor<f32>
  return %1 : tensor<f32>
}
