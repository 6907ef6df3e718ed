//===- NNOps.td - Operations of the nn dialect --------------*- tablegen -*-===//

#ifndef TESSERA_NN_OPS
#define TESSERA_NN_OPS

include "NNDialect.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"

//===----------------------------------------------------------------------===//
// Element-wise
//===----------------------------------------------------------------------===//

class NN_UnaryOp<string mnemonic, string formula>
    : NN_Op<mnemonic, [Pure, SameOperandsAndResultType]> {
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
    : NN_Op<mnemonic, [Pure]> {
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

def NN_SoftmaxOp : NN_Op<"softmax", [Pure, SameOperandsAndResultType]> {
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

def NN_LinearOp : NN_Op<"linear", [Pure]> {
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

def NN_MatmulOp : NN_Op<"matmul", [Pure]> {
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

def NN_LayerNormOp : NN_Op<"layer_norm", [Pure]> {
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

def NN_RMSNormOp : NN_Op<"rms_norm", [Pure]> {
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

def NN_EmbeddingOp : NN_Op<"embedding", [Pure]> {
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

def NN_AttentionOp : NN_Op<"attention", [Pure]> {
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
  let hasVerifier = 1;
}

def NN_CrossEntropyOp : NN_Op<"cross_entropy", [Pure]> {
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

def NN_ReshapeOp : NN_Op<"reshape", [Pure]> {
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

def NN_TransposeOp : NN_Op<"transpose", [Pure]> {
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

class NN_ReduceOp<string mnemonic, string what> : NN_Op<mnemonic, [Pure]> {
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

def NN_ConcatOp : NN_Op<"concat", [Pure]> {
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

def NN_SliceOp : NN_Op<"slice", [Pure]> {
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

#endif // TESSERA_NN_OPS
