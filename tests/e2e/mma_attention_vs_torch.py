"""Attention on tensor cores, forward and gradients, against PyTorch.

Each case is a module `@loss(q, k, v) = sum(attention(round(q), round(k),
round(v)) * R)` (round: precision.round to bf16 or f16, so the attention
qualifies for the tensor-core kernels), compiled with `--target sm_80
--gpu-code=ptx` and run on the fake CUDA driver, which interprets the PTX
(FAKE_CUDA_EXECUTE=1). Its `train_step` gives the loss and dq, dk, dv (the
rounding passes gradients through), from the forward kernel and the two
gradient kernels. The reference is PyTorch in f64 on the rounded inputs.

The kernels round, beyond the inputs, what enters their products: the
probabilities P (before P V, and P^T before dO), the output gradient R
(dO) and the scores' gradients dS; each rounding is a relative error of
2^-9 (bf16) or 2^-12 (f16) per element, and the errors of a sum of many
such terms partly cancel. Bounds (normwise relative): 1e-2 for bf16 and
2e-3 for f16 on the loss and on each gradient; the measured errors are
printed. The PTX (`--emit=ptx`) must have three kernels with mma.sync in
`train_step` (forward, dq, dk/dv), four when dk and dv are apart (heads of
k and v together wider than 128). Shapes: two tiles of 64 queries and keys (the causal mask crosses
a tile boundary), more keys than queries, key and value widths that
differ, rank 4 (batch and heads).

Usage: mma_attention_vs_torch.py BIN_DIR WORK_DIR
"""
import math
import os
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from st_io import write_safetensors  # noqa: E402

bin_dir, work = sys.argv[1:3]
tessera = os.path.join(bin_dir, "tessera")
env = dict(os.environ, TESSERA_LIBCUDA=os.path.join(bin_dir, "..", "lib", "libtessera_fake_cuda.so"),
           FAKE_CUDA_EXECUTE="1", FAKE_CUDA_GUARD="1")
torch.manual_seed(5)
LOW = {"bf16": torch.bfloat16, "f16": torch.float16}
BOUND = {"bf16": 1e-2, "f16": 2e-3}


def ttype(shape):
    return "tensor<" + "".join(f"{d}x" for d in shape) + "f32>"


def dense(t):
    return "[" + ", ".join(dense(s) for s in t) + "]" if t.dim() else repr(float(t))


def attention(q, k, v, causal, scale):
    s = q @ k.transpose(-1, -2) * scale
    if causal:
        t, n = s.shape[-2:]
        s = s.masked_fill(torch.triu(torch.ones(t, n, dtype=torch.bool), 1), float("-inf"))
    return s.softmax(-1) @ v


def check(label, fmt, q_shape, k_shape, v_shape, causal, scale=None):
    d = os.path.join(work, label.replace(" ", "_"))
    os.makedirs(d, exist_ok=True)
    shapes = [q_shape, k_shape, v_shape]
    out_shape = q_shape[:-1] + v_shape[-1:]
    scale = scale or 1 / math.sqrt(q_shape[-1])
    params = {f"p{i}": torch.randn(s) for i, s in enumerate(shapes)}
    R = torch.randn(out_shape)
    args = ", ".join(f"%p{i}: {ttype(s)} {{tessera.param = \"p{i}\"}}" for i, s in enumerate(shapes))
    rounds = "\n".join(f"    %r{i} = precision.round %p{i} {{format = \"{fmt}\"}} : {ttype(s)}"
                       for i, s in enumerate(shapes))
    attrs = ", ".join((["causal"] if causal else []) + [f"scale = {scale!r} : f64"])
    out = ttype(out_shape)
    text = ("module {\n  func.func @loss(" + args + ") -> tensor<f32> {\n" + rounds + "\n"
            + f"    %a = nn.attention %r0, %r1, %r2 {{{attrs}}} : "
            + f"({', '.join(ttype(s) for s in shapes)}) -> {out}\n"
            + f"    %w = arith.constant dense<{dense(R)}> : {out}\n"
            + f"    %m = nn.mul %a, %w : ({out}, {out}) -> {out}\n"
            + f"    %s = nn.reduce_sum %m : ({out}) -> tensor<f32>\n"
            + "    return %s : tensor<f32>\n  }\n}\n")
    open(f"{d}/case.mlir", "w").write(text)
    subprocess.run([tessera, "compile", f"{d}/case.mlir", "-o", f"{d}/case.tsrpkg",
                    "--target", "sm_80", "--gpu-code=ptx"], check=True)
    subprocess.run([tessera, "compile", f"{d}/case.mlir", "-o", f"{d}/case.ptx",
                    "--target", "sm_80", "--emit=ptx"], check=True)
    kernels = open(f"{d}/case.ptx").read().split(".entry ")[1:]
    # train_step's forward kernel and the gradient kernels (the module
    # has no other products): dq and dk/dv, or dk and dv apart when the
    # heads of k and v are together wider than 128.
    on_tensor_cores = sum(k.startswith("train_step") and "mma.sync" in k for k in kernels)
    expected = 3 if k_shape[-1] + v_shape[-1] <= 128 else 4
    write_safetensors(f"{d}/w.safetensors", params)
    names = ["loss"] + [f"grad.{p}" for p in params]
    cmd = [tessera, "run", f"{d}/case.tsrpkg", "--entry", "train_step", "--weights", f"{d}/w.safetensors"]
    for n in names:
        cmd += ["--output", f"{n}={d}/{n}.npy"]
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    got = {n: torch.from_numpy(np.load(f"{d}/{n}.npy")).double() for n in names}

    xs = [p.to(LOW[fmt]).double().requires_grad_() for p in params.values()]
    loss = (attention(*xs, causal, scale) * R.double()).sum()
    loss.backward()
    errors = {"loss": abs(got["loss"].item() - loss.item()) / abs(loss.item())}
    for i, x in enumerate(xs):
        errors[f"d{'qkv'[i]}"] = ((got[f"grad.p{i}"] - x.grad).norm() / x.grad.norm()).item()
    ok = max(errors.values()) <= BOUND[fmt] and on_tensor_cores == expected
    print(f"{'ok  ' if ok else 'FAIL'} {label:40s} " + ", ".join(f"{k} {e:.1e}" for k, e in errors.items())
          + f", bound {BOUND[fmt]:g}, attention kernels on tensor cores: {on_tensor_cores}")
    return ok


cases = [
    ("bf16 causal [2,128,64]", "bf16", [2, 128, 64], [2, 128, 64], [2, 128, 64], True),
    ("f16 causal [2,128,64]", "f16", [2, 128, 64], [2, 128, 64], [2, 128, 64], True),
    ("bf16 [1,2,64,32]x[1,2,128,32]->e16", "bf16", [1, 2, 64, 32], [1, 2, 128, 32], [1, 2, 128, 16],
     False),
    ("f16 causal [1,2,192,32]", "f16", [1, 2, 192, 32], [1, 2, 192, 32], [1, 2, 192, 32], True),
    ("bf16 causal [1,128,16]->e48 scale=0.3", "bf16", [1, 128, 16], [1, 128, 16], [1, 128, 48],
     True, 0.3),
    ("f16 [1,128,96] (dk and dv apart)", "f16", [1, 128, 96], [1, 128, 96], [1, 128, 96], False),
]
failed = sum(not check(*c) for c in cases)
print(f"mma attention: {len(cases)} checked, {failed} failed")
sys.exit(1 if failed else 0)
