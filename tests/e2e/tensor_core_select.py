"""tessera-gpu-select-tensor-cores keeps every value: checked on the CPU.

The pass rebuilds contractions on bf16/f16-rounded operands as matmuls on
half-precision tensors (what the GPU's mma.sync kernels read). Products of two
bf16/f16 numbers are exact in f32 and the k order is unchanged, so the CPU
lowering of the rewritten IR must give the same bits as without the pass, and
both must match PyTorch (operands rounded the same way, f64 products).

Usage: tensor_core_select.py BIN_DIR LLVM_LIB_DIR
"""
import os
import subprocess
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
import mlir_harness as h  # noqa: E402

BIN, LIB = sys.argv[1], sys.argv[2]
PLAIN = ["--tessera-lower-to-llvm-loops"]
SELECT = ["--convert-nn-to-linalg", "--tessera-gpu-select-tensor-cores"]
LOW = {"bf16": torch.bfloat16, "f16": torch.float16}


def ty(shape):
    return h.tensor_type(shape, "f32")


def linear_case(fmt, x_shape, w_shape):
    out = x_shape[:-1] + [w_shape[0]]
    text = f"""func.func @f(%x: {ty(x_shape)}, %w: {ty(w_shape)}) -> {ty(out)} {{
  %a = precision.round %x {{format = "{fmt}"}} : {ty(x_shape)}
  %b = precision.round %w {{format = "{fmt}"}} : {ty(w_shape)}
  %y = nn.linear %a, %b : ({ty(x_shape)}, {ty(w_shape)}) -> {ty(out)}
  return %y : {ty(out)}
}}"""
    ref = lambda x, w: x @ w.T  # noqa: E731
    return f"linear {fmt} {x_shape}x{w_shape}", fmt, text, [x_shape, w_shape], out, ref


def transposed_case(fmt, a_shape, b_shape):
    bt = [b_shape[1], b_shape[0]]
    out = [a_shape[0], bt[1]]
    text = f"""func.func @f(%x: {ty(a_shape)}, %w: {ty(b_shape)}) -> {ty(out)} {{
  %a = precision.round %x {{format = "{fmt}"}} : {ty(a_shape)}
  %b = precision.round %w {{format = "{fmt}"}} : {ty(b_shape)}
  %t = nn.transpose %b {{dim0 = 0 : i64, dim1 = 1 : i64}} : ({ty(b_shape)}) -> {ty(bt)}
  %y = nn.matmul %a, %t : ({ty(a_shape)}, {ty(bt)}) -> {ty(out)}
  return %y : {ty(out)}
}}"""
    ref = lambda x, w: x @ w.T  # noqa: E731
    return f"matmul(a, transpose(b)) {fmt} {a_shape}x{b_shape}^T", fmt, text, [a_shape, b_shape], out, ref


CASES = [
    linear_case("bf16", [2, 64, 32], [128, 32]),
    linear_case("f16", [256, 64], [128, 64]),
    transposed_case("bf16", [128, 96], [256, 96]),
]

torch.manual_seed(0)
failed = 0
for name, fmt, text, shapes, out, ref in CASES:
    selected = subprocess.run([os.path.join(BIN, "tessera-opt")] + SELECT, input=text,
                              check=True, capture_output=True, text=True).stdout
    marked = selected.count(f'tessera.mma = "{fmt}"')
    inputs = [torch.randn(s) for s in shapes]
    plain = h.run(BIN, LIB, text, "f", inputs, out, pipeline=PLAIN)
    rewritten = h.run(BIN, LIB, text, "f", inputs, out, pipeline=SELECT + PLAIN)
    rounded = [t.to(LOW[fmt]).double() for t in inputs]
    err = h.error(rewritten, ref(*rounded))
    same = torch.equal(plain.view(torch.int32), rewritten.view(torch.int32))
    ok = marked == 1 and same and err <= 1e-5
    failed += not ok
    print(f"{name}: marked {marked}, bits equal to the unrewritten lowering: {same}, "
          f"error vs f64 {err:.1e} (bound 1e-5): {'ok' if ok else 'FAIL'}")
print(f"tensor-core selection: {len(CASES)} checked, {failed} failed")
sys.exit(1 if failed else 0)
