//===- NNOps.td - Operations of the nn dialect --------------*- tablegen -*-===//

#ifndef TESSERA_NN_OPS
#define TESSERA_NN_OPS

include "NNDialect.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "NNInterfaces.td"

defvar VJP = DeclareOpInterfaceMethods<NN_DifferentiableOpInterface>;

//===----------------------------------------------------------------------===//
// Element-wise
//===----------------------------------------------------------------------===//

class NN_UnaryOp<string mnemonic, string formula>
    : NN_Op<mnemonic, [Pure, SameOperandsAndResultType, VJP]> {
  let summary = "element-wise " # mnemonic;
  let description = "Computes `" # formula # "` for every element of a "
    # "floating-point tensor.\n\nExample:\n\n```mlir\n%y = nn." # mnemonic
    # " %x : tensor<4x384xf32>\n```";
  let arguments = (ins AnyRankedTensor:$input);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input)";
  let hasVerifier = 1;
}

def NN_ReluOp : NN_UnaryOp<"relu", "max(x, 0)">;
def NN_GeluOp : NN_UnaryOp<"gelu",
  "0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))  (tanh approximation)">;
def NN_SiluOp : NN_UnaryOp<"silu", "x * sigmoid(x)">;

class NN_BinaryOp<string mnemonic, string sym>
    : NN_Op<mnemonic, [Pure, VJP]> {
  let summary = "element-wise " # mnemonic # " with broadcasting";
  let description = "Computes `lhs " # sym # " rhs` with NumPy broadcasting: "
    # "shapes are aligned from the right and a dimension of size 1 stretches. "
    # "Both operands have one element type.\n\nExample:\n\n```mlir\n"
    # "%z = nn." # mnemonic # " %x, %b : (tensor<8x256x384xf32>, "
    # "tensor<384xf32>) -> tensor<8x256x384xf32>\n```";
  let arguments = (ins AnyRankedTensor:$lhs, AnyRankedTensor:$rhs);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat =
    "$lhs `,` $rhs attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def NN_AddOp : NN_BinaryOp<"add", "+">;
def NN_SubOp : NN_BinaryOp<"sub", "-">;
def NN_MulOp : NN_BinaryOp<"mul", "*">;
def NN_DivOp : NN_BinaryOp<"div", "/">;

def NN_SoftmaxOp : NN_Op<"softmax", [Pure, SameOperandsAndResultType, VJP]> {
  let summary = "softmax along one dimension";
  let description = [{
    `exp(x - max(x)) / sum(exp(x - max(x)))` along `dim` (negative values
    count from the end).

    ```mlir
    %p = nn.softmax %x {dim = -1 : i64} : tensor<8x6x256x256xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, I64Attr:$dim);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Linear algebra
//===----------------------------------------------------------------------===//

def NN_LinearOp : NN_Op<"linear", [Pure, VJP]> {
  let summary = "y = x W^T + b";
  let description = [{
    A fully connected layer in PyTorch's layout: `weight` is `[out, in]`,
    `input` is `[..., in]`, the optional `bias` is `[out]` and the result is
    `[..., out]`.

    ```mlir
    %y = nn.linear %x, %w, %b : (tensor<8x256x384xf32>, tensor<1536x384xf32>,
                                 tensor<1536xf32>) -> tensor<8x256x1536xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, AnyRankedTensor:$weight,
                       Optional<AnyRankedTensor>:$bias);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight (`,` $bias^)? attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def NN_MatmulOp : NN_Op<"matmul", [Pure, VJP]> {
  let summary = "batched matrix product with broadcasting batch dimensions";
  let description = [{
    `[..., M, K] x [..., K, N] -> [..., M, N]`; batch dimensions broadcast.

    ```mlir
    %c = nn.matmul %a, %b : (tensor<8x256x384xf32>, tensor<384x65xf32>)
                            -> tensor<8x256x65xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$lhs, AnyRankedTensor:$rhs);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat =
    "$lhs `,` $rhs attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Normalization, embedding, attention, loss
//===----------------------------------------------------------------------===//

def NN_LayerNormOp : NN_Op<"layer_norm", [Pure, VJP]> {
  let summary = "layer normalization over the trailing dimensions";
  let description = [{
    Normalizes over the trailing `rank(weight)` dimensions to zero mean and
    unit variance (biased variance, `eps` added), then scales by `weight` and
    shifts by `bias`; both have the shape of those trailing dimensions.

    ```mlir
    %y = nn.layer_norm %x, %w, %b {eps = 1.0e-05 : f64}
         : (tensor<8x256x384xf32>, tensor<384xf32>, tensor<384xf32>) -> tensor<8x256x384xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, AnyRankedTensor:$weight,
                       AnyRankedTensor:$bias, F64Attr:$eps);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat =
    "$input `,` $weight `,` $bias attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def NN_RMSNormOp : NN_Op<"rms_norm", [Pure, VJP]> {
  let summary = "root-mean-square normalization";
  let description = [{
    `x / sqrt(mean(x^2) + eps) * weight` over the trailing `rank(weight)`
    dimensions.

    ```mlir
    %y = nn.rms_norm %x, %w {eps = 1.0e-06 : f64}
         : (tensor<8x256x384xf32>, tensor<384xf32>) -> tensor<8x256x384xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, AnyRankedTensor:$weight,
                       F64Attr:$eps);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat =
    "$input `,` $weight attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def NN_EmbeddingOp : NN_Op<"embedding", [Pure, VJP]> {
  let summary = "gathers rows of a table";
  let description = [{
    `result[i..., :] = weight[indices[i...], :]` for a `[num, dim]` table
    and integer indices of any shape.

    ```mlir
    %h = nn.embedding %wte, %idx : (tensor<65x384xf32>, tensor<8x256xi32>)
                                   -> tensor<8x256x384xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$weight, AnyRankedTensor:$indices);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat =
    "$weight `,` $indices attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def NN_AttentionOp : NN_Op<"attention", [Pure, VJP]> {
  let summary = "scaled dot-product attention, optionally causal";
  let description = [{
    `softmax(q k^T * scale + mask) v` over `[..., T, D]` tensors; `scale`
    defaults to `1/sqrt(D)`. With `causal`, position `i` attends to
    positions `<= i` only.

    ```mlir
    %y = nn.attention %q, %k, %v {causal = true}
         : (tensor<8x6x256x64xf32>, tensor<8x6x256x64xf32>, tensor<8x6x256x64xf32>)
         -> tensor<8x6x256x64xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$query, AnyRankedTensor:$key,
                       AnyRankedTensor:$value, UnitAttr:$causal,
                       OptionalAttr<F64Attr>:$scale);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat =
    "$query `,` $key `,` $value attr-dict `:` functional-type(operands, results)";
  let extraClassDeclaration = [{
    /// The scale applied to q k^T: `scale`, or 1/sqrt(head dimension).
    double getScaleOrDefault();
  }];
  let hasVerifier = 1;
}

def NN_CrossEntropyOp : NN_Op<"cross_entropy", [Pure, VJP]> {
  let summary = "mean softmax cross-entropy against class indices";
  let description = [{
    `mean(-log_softmax(logits)[..., target])` for logits `[..., C]` and
    integer targets `[...]`; the result is a scalar.

    ```mlir
    %l = nn.cross_entropy %logits, %y : (tensor<8x256x65xf32>, tensor<8x256xi32>)
                                         -> tensor<f32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$logits, AnyRankedTensor:$targets);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat =
    "$logits `,` $targets attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Shape manipulation
//===----------------------------------------------------------------------===//

def NN_ReshapeOp : NN_Op<"reshape", [Pure, VJP]> {
  let summary = "same elements, new shape";
  let description = [{
    Row-major reshape; the element count must not change.

    ```mlir
    %y = nn.reshape %x : (tensor<8x256x384xf32>) -> tensor<8x256x6x64xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$input attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
  let hasFolder = 1;
}

def NN_TransposeOp : NN_Op<"transpose", [Pure, VJP]> {
  let summary = "swaps two dimensions";
  let description = [{
    ```mlir
    %y = nn.transpose %x {dim0 = 1 : i64, dim1 = 2 : i64}
         : (tensor<8x256x6x64xf32>) -> tensor<8x6x256x64xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, I64Attr:$dim0, I64Attr:$dim1);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$input attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
  let hasFolder = 1;
}

class NN_ReduceOp<string mnemonic, string what> : NN_Op<mnemonic, [Pure, VJP]> {
  let summary = what # " over one dimension, or all";
  let description = "Reduces `dim` (all dimensions when absent) by " # what
    # "; `keepdim` keeps reduced dimensions as size 1.\n\n```mlir\n%s = nn."
    # mnemonic # " %x {dim = -1 : i64} : (tensor<8x256xf32>) -> tensor<8xf32>\n```";
  let arguments = (ins AnyRankedTensor:$input, OptionalAttr<I64Attr>:$dim,
                       UnitAttr:$keepdim);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$input attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def NN_ReduceSumOp : NN_ReduceOp<"reduce_sum", "the sum">;
def NN_ReduceMeanOp : NN_ReduceOp<"reduce_mean", "the mean">;
def NN_ReduceMaxOp : NN_ReduceOp<"reduce_max", "the maximum">;

def NN_ConcatOp : NN_Op<"concat", [Pure, VJP]> {
  let summary = "joins tensors along one dimension";
  let description = [{
    ```mlir
    %y = nn.concat %a, %b {dim = 0 : i64}
         : (tensor<2x4xf32>, tensor<3x4xf32>) -> tensor<5x4xf32>
    ```
  }];
  let arguments = (ins Variadic<AnyRankedTensor>:$inputs, I64Attr:$dim);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$inputs attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def NN_SliceOp : NN_Op<"slice", [Pure, VJP]> {
  let summary = "a strided box of a tensor";
  let description = [{
    Takes `[start, limit)` with `stride` in every dimension (all three lists
    have one entry per dimension).

    ```mlir
    %y = nn.slice %x {start = array<i64: 0, 1>, limit = array<i64: 4, 5>,
                      stride = array<i64: 1, 2>} : (tensor<4x8xf32>) -> tensor<4x2xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, DenseI64ArrayAttr:$start,
                       DenseI64ArrayAttr:$limit, DenseI64ArrayAttr:$stride);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$input attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def NN_ArangeOp : NN_Op<"arange", [Pure]> {
  let summary = "0, 1, ..., n-1";
  let description = [{
    A 1-D integer tensor counting from zero; its length is the result's
    (static) size.

    ```mlir
    %pos = nn.arange : tensor<256xi32>
    ```
  }];
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "attr-dict `:` type($result)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Gradients (built by the VJPs of the ops above)
//===----------------------------------------------------------------------===//

class NN_ActivationGradOp<string mnemonic, string formula>
    : NN_Op<mnemonic, [Pure, SameOperandsAndResultType]> {
  let summary = "gradient of an element-wise activation";
  let description = "`grad * " # formula # "`, element by element, where `x` "
    # "is the activation's input.\n\n```mlir\n%dx = nn." # mnemonic
    # " %g, %x : tensor<4x384xf32>\n```";
  let arguments = (ins AnyRankedTensor:$grad, AnyRankedTensor:$input);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$grad `,` $input attr-dict `:` type($grad)";
}

def NN_ReluGradOp : NN_ActivationGradOp<"relu_grad", "(x > 0)">;
def NN_GeluGradOp : NN_ActivationGradOp<"gelu_grad", "d/dx gelu_tanh(x)">;
def NN_SiluGradOp : NN_ActivationGradOp<"silu_grad",
  "sigmoid(x) (1 + x (1 - sigmoid(x)))">;

def NN_LayerNormGradOp : NN_Op<"layer_norm_grad", [Pure]> {
  let summary = "gradients of layer_norm";
  let description = [{
    Given the gradient of `layer_norm(x, w, b)`, returns the gradients with
    respect to `x`, `w` and `b` (the statistics are recomputed from `x`).

    ```mlir
    %dx, %dw, %db = nn.layer_norm_grad %g, %x, %w {eps = 1.0e-05 : f64}
        : (tensor<8x384xf32>, tensor<8x384xf32>, tensor<384xf32>)
        -> (tensor<8x384xf32>, tensor<384xf32>, tensor<384xf32>)
    ```
  }];
  let arguments = (ins AnyRankedTensor:$grad, AnyRankedTensor:$input,
                       AnyRankedTensor:$weight, F64Attr:$eps);
  let results = (outs AnyRankedTensor:$input_grad, AnyRankedTensor:$weight_grad,
                      AnyRankedTensor:$bias_grad);
  let assemblyFormat =
    "$grad `,` $input `,` $weight attr-dict `:` functional-type(operands, results)";
}

def NN_AttentionGradOp : NN_Op<"attention_grad", [Pure]> {
  let summary = "gradients of attention";
  let description = [{
    Given the gradient `grad` of `out = attention(q, k, v)` (same `causal`
    and `scale`), returns the gradients with respect to `q`, `k` and `v`.
    `out` is the forward result; the probabilities are recomputed. Lowered
    either as the composed products (`decompose`) or, on the GPU, as
    flash-style loops that never hold a `T x S` tensor.

    ```mlir
    %dq, %dk, %dv = nn.attention_grad %g, %q, %k, %v, %out {causal = true}
        : (tensor<8x6x256x64xf32>, tensor<8x6x256x64xf32>,
           tensor<8x6x256x64xf32>, tensor<8x6x256x64xf32>,
           tensor<8x6x256x64xf32>)
        -> (tensor<8x6x256x64xf32>, tensor<8x6x256x64xf32>,
            tensor<8x6x256x64xf32>)
    ```
  }];
  let arguments = (ins AnyRankedTensor:$grad, AnyRankedTensor:$query,
                       AnyRankedTensor:$key, AnyRankedTensor:$value,
                       AnyRankedTensor:$out, UnitAttr:$causal,
                       OptionalAttr<F64Attr>:$scale);
  let results = (outs AnyRankedTensor:$query_grad, AnyRankedTensor:$key_grad,
                      AnyRankedTensor:$value_grad);
  let assemblyFormat = [{
    $grad `,` $query `,` $key `,` $value `,` $out attr-dict `:`
    functional-type(operands, results)
  }];
  let extraClassDeclaration = [{
    /// The scale applied to q k^T: `scale`, or 1/sqrt(head dimension).
    double getScaleOrDefault();
    /// The gradients as nn ops: p is recomputed with matmul and softmax,
    /// so `T x S` tensors are materialized. Returns {dq, dk, dv}.
    ::llvm::SmallVector<::mlir::Value, 3> decompose(::mlir::OpBuilder &b);
  }];
  let hasVerifier = 1;
}

def NN_RMSNormGradOp : NN_Op<"rms_norm_grad", [Pure]> {
  let summary = "gradients of rms_norm";
  let description = [{
    ```mlir
    %dx, %dw = nn.rms_norm_grad %g, %x, %w {eps = 1.0e-06 : f64}
        : (tensor<8x384xf32>, tensor<8x384xf32>, tensor<384xf32>)
        -> (tensor<8x384xf32>, tensor<384xf32>)
    ```
  }];
  let arguments = (ins AnyRankedTensor:$grad, AnyRankedTensor:$input,
                       AnyRankedTensor:$weight, F64Attr:$eps);
  let results = (outs AnyRankedTensor:$input_grad, AnyRankedTensor:$weight_grad);
  let assemblyFormat =
    "$grad `,` $input `,` $weight attr-dict `:` functional-type(operands, results)";
}

def NN_EmbeddingGradOp : NN_Op<"embedding_grad", [Pure]> {
  let summary = "gradient of embedding: rows scattered and summed";
  let description = [{
    `result[v, :] = sum of grad[i..., :] over every i with indices[i...] == v`;
    the result has the table's shape `[num, dim]`.

    ```mlir
    %dw = nn.embedding_grad %g, %idx : (tensor<8x256x384xf32>, tensor<8x256xi32>)
                                       -> tensor<65x384xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$grad, AnyRankedTensor:$indices);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat =
    "$grad `,` $indices attr-dict `:` functional-type(operands, results)";
}

def NN_CrossEntropyGradOp : NN_Op<"cross_entropy_grad", [Pure]> {
  let summary = "gradient of cross_entropy with respect to the logits";
  let description = [{
    `grad * (softmax(logits) - onehot(targets)) / N`, N the number of
    targets; `grad` is the scalar gradient of the loss.

    ```mlir
    %dl = nn.cross_entropy_grad %g, %logits, %y
        : (tensor<f32>, tensor<8x65xf32>, tensor<8xi32>) -> tensor<8x65xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$grad, AnyRankedTensor:$logits,
                       AnyRankedTensor:$targets);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat =
    "$grad `,` $logits `,` $targets attr-dict `:` functional-type(operands, results)";
}

def NN_SliceGradOp : NN_Op<"slice_grad", [Pure]> {
  let summary = "gradient of slice: the slice placed into zeros";
  let description = [{
    A tensor of the result type, zero except for the box `[start, limit)`
    with `stride`, which holds `grad`.

    ```mlir
    %dx = nn.slice_grad %g {start = array<i64: 0, 4>, limit = array<i64: 4, 8>,
                            stride = array<i64: 1, 1>}
        : (tensor<4x4xf32>) -> tensor<4x12xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$grad, DenseI64ArrayAttr:$start,
                       DenseI64ArrayAttr:$limit, DenseI64ArrayAttr:$stride);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$grad attr-dict `:` functional-type(operands, results)";
}

#endif // TESSERA_NN_OPS
