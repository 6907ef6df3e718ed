//===- OptimDialect.td - The optim dialect ------------------*- tablegen -*-===//
//
// `optim` holds optimizer steps as fused element-wise updates over flat
// parameter buffers ("multi-tensor" style): every trainable parameter lives
// at an offset of one f32 buffer, and so do its gradient and optimizer state,
// so a step is one pass over memory whatever the number of tensors.
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_OPTIM_DIALECT
#define TESSERA_OPTIM_DIALECT

include "mlir/IR/OpBase.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Optim_Dialect : Dialect {
  let name = "optim";
  let cppNamespace = "::tessera::optim";
  let summary = "Optimizer steps over flat parameter buffers";
  let description = [{
    Ops take the flat buffers (`tensor<Nxf32>`) and a small vector of
    hyper-parameters that change from step to step (learning rate, bias
    corrections), and return the updated buffers. Elements `[0, decay_end)`
    get weight decay, the rest do not (the runtime lays parameters out that
    way: see docs/training.md). `convert-optim-to-linalg` lowers them.
  }];
}

class Optim_Op<string mnemonic, list<Trait> traits = []>
    : Op<Optim_Dialect, mnemonic, traits>;

def Optim_ClipByGlobalNormOp : Optim_Op<"clip_by_global_norm", [Pure]> {
  let summary = "scales gradients so their global L2 norm is at most max_norm";
  let description = [{
    As `torch.nn.utils.clip_grad_norm_`: `norm = ||grads||_2`,
    `coef = max_norm / (norm + 1e-6)`; when `coef < 1` the gradients are
    multiplied by it. Returns the (clipped) gradients and the norm before
    clipping.

    ```mlir
    %g2, %norm = optim.clip_by_global_norm %g {max_norm = 1.0 : f64}
        : (tensor<1000xf32>) -> (tensor<1000xf32>, tensor<f32>)
    ```
  }];
  let arguments = (ins RankedTensorOf<[F32]>:$grads, F64Attr:$max_norm);
  let results = (outs RankedTensorOf<[F32]>:$clipped, RankedTensorOf<[F32]>:$norm);
  let assemblyFormat = "$grads attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Optim_GlobalNormOp : Optim_Op<"global_norm", [Pure]> {
  let summary = "the L2 norm of a flat gradient buffer";
  let description = [{
    ```mlir
    %norm = optim.global_norm %g : (tensor<1000xf32>) -> tensor<f32>
    ```
  }];
  let arguments = (ins RankedTensorOf<[F32]>:$grads);
  let results = (outs RankedTensorOf<[F32]>:$norm);
  let assemblyFormat = "$grads attr-dict `:` functional-type(operands, results)";
}

def Optim_AdamWStepOp : Optim_Op<"adamw_step", [Pure]> {
  let summary = "one AdamW step (decoupled weight decay, bias correction)";
  let description = [{
    Exactly `torch.optim.AdamW` (Loshchilov & Hutter), element by element,
    with `hyper = [lr, beta1, beta2, eps, weight_decay, bias_correction1,
    bias_correction2]` (`bias_correction = 1 - beta^step`):

    ```
    p = p * (1 - lr * wd)            (elements [0, decay_end) only)
    m = beta1 m + (1 - beta1) g
    v = beta2 v + (1 - beta2) g^2
    p = p - (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)
    ```

    ```mlir
    %p2, %m2, %v2 = optim.adamw_step %p, %g, %m, %v, %hyper {decay_end = 900 : i64}
        : (tensor<1000xf32>, tensor<1000xf32>, tensor<1000xf32>, tensor<1000xf32>,
           tensor<7xf32>) -> (tensor<1000xf32>, tensor<1000xf32>, tensor<1000xf32>)
    ```
  }];
  let arguments = (ins RankedTensorOf<[F32]>:$params, RankedTensorOf<[F32]>:$grads,
                       RankedTensorOf<[F32]>:$exp_avg, RankedTensorOf<[F32]>:$exp_avg_sq,
                       RankedTensorOf<[F32]>:$hyper, I64Attr:$decay_end);
  let results = (outs RankedTensorOf<[F32]>:$new_params,
                      RankedTensorOf<[F32]>:$new_exp_avg,
                      RankedTensorOf<[F32]>:$new_exp_avg_sq);
  let assemblyFormat = "operands attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def Optim_SGDStepOp : Optim_Op<"sgd_step", [Pure]> {
  let summary = "one SGD step with momentum (and optional Nesterov)";
  let description = [{
    As `torch.optim.SGD` (dampening 0), with `hyper = [lr, momentum,
    weight_decay]`:

    ```
    d = g + wd p                     (elements [0, decay_end) only)
    buf = momentum buf + d
    p = p - lr (nesterov ? d + momentum buf : buf)
    ```

    ```mlir
    %p2, %b2 = optim.sgd_step %p, %g, %buf, %hyper {decay_end = 900 : i64}
        : (tensor<1000xf32>, tensor<1000xf32>, tensor<1000xf32>, tensor<3xf32>)
        -> (tensor<1000xf32>, tensor<1000xf32>)
    ```
  }];
  let arguments = (ins RankedTensorOf<[F32]>:$params, RankedTensorOf<[F32]>:$grads,
                       RankedTensorOf<[F32]>:$momentum_buffer,
                       RankedTensorOf<[F32]>:$hyper, I64Attr:$decay_end,
                       UnitAttr:$nesterov);
  let results = (outs RankedTensorOf<[F32]>:$new_params,
                      RankedTensorOf<[F32]>:$new_momentum_buffer);
  let assemblyFormat = "operands attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

#endif // TESSERA_OPTIM_DIALECT
