// RUN: tessera-opt %s --tessera-autodiff --split-input-file -verify-diagnostics | FileCheck %s
// RUN: tessera-opt %s --tessera-autodiff=scale-loss --split-input-file -verify-diagnostics | FileCheck %s --check-prefix=SCALE

// The backward pass of a linear layer + cross-entropy: one VJP per op, last
// op first; results are the loss, then one gradient per parameter.
// CHECK-LABEL: func.func @train_step
// CHECK-SAME: -> (tensor<f32> {tessera.output = "loss"}, tensor<3x4xf32> {tessera.output = "grad.w"}, tensor<3xf32> {tessera.output = "grad.b"})
// CHECK: %[[Y:.*]] = nn.linear
// CHECK: %[[L:.*]] = nn.cross_entropy %[[Y]]
// CHECK: %[[DY:.*]] = nn.cross_entropy_grad %{{.*}}, %[[Y]], %arg1
// CHECK: nn.matmul %[[DY]], %arg2
// CHECK: %[[DYT:.*]] = nn.transpose %[[DY]]
// CHECK: %[[DW:.*]] = nn.matmul %[[DYT]], %arg0
// CHECK: %[[DB:.*]] = nn.reduce_sum %[[DY]] {dim = 0 : i64}
// CHECK: return %[[L]], %[[DW]], %[[DB]]
// With scale-loss the seed is a new input after the others (fp16).
// SCALE-LABEL: func.func @train_step(%arg0: tensor<2x4xf32> {tessera.input = "x"}, %arg1: tensor<2xi32> {tessera.input = "y"}, %arg2: tensor<f32> {tessera.input = "loss_scale"}
// SCALE: nn.cross_entropy_grad %arg2,
func.func @loss(%x: tensor<2x4xf32> {tessera.input = "x"}, %y: tensor<2xi32> {tessera.input = "y"},
                %w: tensor<3x4xf32> {tessera.param = "w"}, %b: tensor<3xf32> {tessera.param = "b"}) -> tensor<f32> {
  %0 = nn.linear %x, %w, %b : (tensor<2x4xf32>, tensor<3x4xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  %1 = nn.cross_entropy %0, %y : (tensor<2x3xf32>, tensor<2xi32>) -> tensor<f32>
  return %1 : tensor<f32>
}

// -----

// A value used twice gets the sum of both gradients.
// CHECK-LABEL: func.func @train_step
// CHECK: nn.reduce_sum
// CHECK: %[[G1:.*]] = nn.mul %{{.*}}, %arg0
// CHECK: %[[G2:.*]] = nn.mul %{{.*}}, %arg0
// CHECK: nn.add %[[G1]], %[[G2]]
func.func @loss(%p: tensor<3xf32> {tessera.param = "p"}) -> tensor<f32> {
  %0 = nn.mul %p, %p : (tensor<3xf32>, tensor<3xf32>) -> tensor<3xf32>
  %1 = nn.reduce_sum %0 : (tensor<3xf32>) -> tensor<f32>
  return %1 : tensor<f32>
}

// -----

// An op without a gradient on the path to a parameter is an error there.
func.func @loss(%p: tensor<3xf32> {tessera.param = "p"}) -> tensor<f32> {
  // expected-error @+1 {{'nn.reduce_max' op has no gradient yet}}
  %0 = nn.reduce_max %p : (tensor<3xf32>) -> tensor<f32>
  return %0 : tensor<f32>
}
