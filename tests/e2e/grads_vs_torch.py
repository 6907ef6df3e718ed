"""Gradients of every differentiable nn op, from `tessera-autodiff`, against
PyTorch autograd and against finite differences of Tessera's own compiled
loss.

Each case is an nn-dialect module with `@loss(params...) =
sum(op(params...) * R)` (R a fixed random tensor, integer operands as
constants). `tessera compile case.mlir -o case.tsrpkg` differentiates it into
`train_step`; `tessera run --entry train_step --weights W` returns the loss
and one gradient per parameter. Checks:
- autograd: normwise relative error against torch f64, bound 1e-5 (torch's
  own f32 error printed beside);
- finite differences: central differences D(h) = (L(p + h d) - L(p - h d)) / 2h
  of the compiled f32 `loss` entry along a random direction d, extrapolated
  as (4 D(h/2) - D(h)) / 3, against <grad, d>; bound 1e-2 relative (the f32
  loss limits the accuracy of the difference).
Shapes include the odd sizes 1, 3 and 17.
Usage: grads_vs_torch.py BIN_DIR WORK_DIR
"""
import math
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

from mlir_harness import error
from st_io import write_safetensors

bin_dir, work = sys.argv[1:3]
os.makedirs(work, exist_ok=True)
torch.manual_seed(2)
tessera = os.path.join(bin_dir, "tessera")


def ttype(shape, elem="f32"):
    return "tensor<" + "".join(f"{d}x" for d in shape) + elem + ">"


def dense(t):
    if t.dim() == 0:
        return repr(float(t)) if t.is_floating_point() else str(int(t))
    return "[" + ", ".join(dense(s) for s in t) + "]"


def T(*shape):
    return torch.randn(*shape)


cases = []


def case(label, op_text, ins, ref):
    cases.append((label, op_text, ins, ref))


def module(op_text, ins, out_shape):
    args, consts, operands = [], [], []
    for i, t in enumerate(ins):
        ty = ttype(list(t.shape), "f32" if t.is_floating_point() else "i32")
        if t.is_floating_point():
            args.append(f"%p{i}: {ty} {{tessera.param = \"p{i}\"}}")
            operands.append(f"%p{i}")
        else:
            consts.append(f"    %c{i} = arith.constant dense<{dense(t)}> : {ty}")
            operands.append(f"%c{i}")
    types = ", ".join(ttype(list(t.shape), "f32" if t.is_floating_point() else "i32") for t in ins)
    out = ttype(out_shape)
    text = op_text.format(ins=types, out=out)
    for i, o in enumerate(operands):
        text = text.replace(f"%a{i}", o)
    # Several lines: the last one is the result.
    *lines, text = text.split("\n")
    return ("module {\n  func.func @loss(" + ", ".join(args) + ") -> tensor<f32> {\n"
            + "\n".join(consts) + ("\n" if consts else "")
            + "".join(f"    {line}\n" for line in lines)
            + f"    %r = {text}\n"
            + f"    %w = arith.constant dense<{{R}}> : {out}\n"
            + f"    %m = nn.mul %r, %w : ({out}, {out}) -> {out}\n"
            + f"    %s = nn.reduce_sum %m : ({out}) -> tensor<f32>\n"
            + "    return %s : tensor<f32>\n  }\n}\n")


a, b = T(3, 1, 17), T(17)
case("add [3,1,17]+[17]", "nn.add %a0, %a1 : ({ins}) -> {out}", [a, b], lambda x, y: x + y)
case("sub [1,3]-[5,1]", "nn.sub %a0, %a1 : ({ins}) -> {out}", [T(1, 3), T(5, 1)], lambda x, y: x - y)
case("mul [3,17]*[1]", "nn.mul %a0, %a1 : ({ins}) -> {out}", [T(3, 17), T(1)], lambda x, y: x * y)
case("div [2,4,3]/[4,3]", "nn.div %a0, %a1 : ({ins}) -> {out}", [T(2, 4, 3), T(4, 3).abs() + 0.5],
     lambda x, y: x / y)
for name, ref in [("relu", F.relu), ("gelu", lambda x: F.gelu(x, approximate="tanh")), ("silu", F.silu)]:
    case(f"{name} [1,3,17]", f"nn.{name} %a0 : {{out}}", [T(1, 3, 17) * 3], ref)
for dim in (-1, 0):
    case(f"softmax dim={dim} [3,17]", f"nn.softmax %a0 {{{{dim = {dim} : i64}}}} : {{out}}",
         [T(3, 17) * 2], lambda x, dim=dim: x.softmax(dim))
case("linear+bias [2,3,17]x[5,17]", "nn.linear %a0, %a1, %a2 : ({ins}) -> {out}",
     [T(2, 3, 17), T(5, 17), T(5)], F.linear)
case("linear [1,3]x[1,3]", "nn.linear %a0, %a1 : ({ins}) -> {out}", [T(1, 3), T(1, 3)],
     lambda x, w: F.linear(x, w))
case("matmul [2,3,17]@[17,5]", "nn.matmul %a0, %a1 : ({ins}) -> {out}", [T(2, 3, 17), T(17, 5)],
     lambda x, y: x @ y)
case("matmul [1,4,3]@[2,3,1]", "nn.matmul %a0, %a1 : ({ins}) -> {out}", [T(1, 4, 3), T(2, 3, 1)],
     lambda x, y: x @ y)
case("layer_norm [3,17]", "nn.layer_norm %a0, %a1, %a2 {{eps = 1.0e-05 : f64}} : ({ins}) -> {out}",
     [T(3, 17) * 2 + 1, T(17), T(17)], lambda x, w, b: F.layer_norm(x, (17,), w, b, 1e-5))
case("layer_norm 2 dims [2,3,5]", "nn.layer_norm %a0, %a1, %a2 {{eps = 1.0e-05 : f64}} : ({ins}) -> {out}",
     [T(2, 3, 5), T(3, 5), T(3, 5)], lambda x, w, b: F.layer_norm(x, (3, 5), w, b, 1e-5))
case("rms_norm [3,17]", "nn.rms_norm %a0, %a1 {{eps = 1.0e-06 : f64}} : ({ins}) -> {out}",
     [T(3, 17), T(17)], lambda x, w: x * torch.rsqrt((x * x).mean(-1, keepdim=True) + 1e-6) * w)
idx = torch.tensor([[3], [16], [3]], dtype=torch.int32)  # a repeated row accumulates
case("embedding [17,5][idx 3x1]", "nn.embedding %a0, %a1 : ({ins}) -> {out}", [T(17, 5), idx],
     lambda w, i: F.embedding(i.long(), w))


def attn(q, k, v, causal, scale=None):
    s = q @ k.transpose(-1, -2) * (scale if scale else 1 / math.sqrt(q.shape[-1]))
    if causal:
        n = s.shape[-1]
        s = s.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool), 1), float("-inf"))
    return s.softmax(-1) @ v


q, k, v = T(2, 3, 5, 4), T(2, 3, 5, 4), T(2, 3, 5, 4)
case("attention causal [2,3,5,4]", "nn.attention %a0, %a1, %a2 {{causal}} : ({ins}) -> {out}",
     [q, k, v], lambda q, k, v: attn(q, k, v, True))
case("attention [2,7,5]x[2,17,5]->[2,7,3]", "nn.attention %a0, %a1, %a2 : ({ins}) -> {out}",
     [T(2, 7, 5), T(2, 17, 5), T(2, 17, 3)], lambda q, k, v: attn(q, k, v, False))
case("attention causal [3,17,6] scale=0.7", "nn.attention %a0, %a1, %a2 {{causal, scale = 7.0e-01 : f64}} : ({ins}) -> {out}",
     [T(3, 17, 6) * 2, T(3, 17, 6), T(3, 17, 6)], lambda q, k, v: attn(q, k, v, True, 0.7))
# Heads of 40: on the GPU, dk and dv in two loops (small heads share one).
case("attention causal [2,6,40]", "nn.attention %a0, %a1, %a2 {{causal}} : ({ins}) -> {out}",
     [T(2, 6, 40), T(2, 6, 40), T(2, 6, 40)], lambda q, k, v: attn(q, k, v, True))
case("attention scale=0.3 [1,3,4]", "nn.attention %a0, %a1, %a2 {{scale = 3.0e-01 : f64}} : ({ins}) -> {out}",
     [T(1, 3, 4), T(1, 3, 4), T(1, 3, 4)], lambda q, k, v: attn(q, k, v, False, 0.3))
tg = torch.randint(0, 17, (3,), dtype=torch.int32)
case("cross_entropy [3,17]", "nn.cross_entropy %a0, %a1 : ({ins}) -> {out}", [T(3, 17), tg],
     lambda x, t: F.cross_entropy(x, t.long()))
tg2 = torch.randint(0, 5, (2, 3), dtype=torch.int32)
case("cross_entropy [2,3,5]", "nn.cross_entropy %a0, %a1 : ({ins}) -> {out}", [T(2, 3, 5), tg2],
     lambda x, t: F.cross_entropy(x.reshape(-1, 5), t.reshape(-1).long()))
# A table of 128 rows of 1024: on the GPU, 64 blocks of 2 rows, each loop
# adding the indices that fall in its block (repeated, at block edges).
idx2 = torch.tensor([[0, 1, 1, 127, 64], [65, 0, 3, 126, 1]], dtype=torch.int32)
case("embedding [128,1024][idx 2x5]", "nn.embedding %a0, %a1 : ({ins}) -> {out}",
     [T(128, 1024), idx2], lambda w, i: F.embedding(i.long(), w))
# Rows of 12, 6 and 8: the GPU row kernels' 4- and 2-lane chunks.
case("softmax dim=-1 [2,3,12]", "nn.softmax %a0 {{dim = -1 : i64}} : {out}", [T(2, 3, 12) * 2],
     lambda x: x.softmax(-1))
case("layer_norm [2,3,12]", "nn.layer_norm %a0, %a1, %a2 {{eps = 1.0e-05 : f64}} : ({ins}) -> {out}",
     [T(2, 3, 12) * 3 + 2, T(12), T(12)], lambda x, w, b: F.layer_norm(x, (12,), w, b, 1e-5))
case("rms_norm [5,6]", "nn.rms_norm %a0, %a1 {{eps = 1.0e-06 : f64}} : ({ins}) -> {out}",
     [T(5, 6), T(6)], lambda x, w: x * torch.rsqrt((x * x).mean(-1, keepdim=True) + 1e-6) * w)
tg3 = torch.randint(0, 8, (2, 3), dtype=torch.int32)
case("cross_entropy [2,3,8]", "nn.cross_entropy %a0, %a1 : ({ins}) -> {out}", [T(2, 3, 8) * 2, tg3],
     lambda x, t: F.cross_entropy(x.reshape(-1, 8), t.reshape(-1).long()))
case("reshape [2,3,4]->[6,4]", "nn.reshape %a0 : ({ins}) -> {out}", [T(2, 3, 4)], lambda x: x.reshape(6, 4))
case("transpose [2,3,5] 0<->2", "nn.transpose %a0 {{dim0 = 0 : i64, dim1 = 2 : i64}} : ({ins}) -> {out}",
     [T(2, 3, 5)], lambda x: x.transpose(0, 2))
case("reduce_sum dim=1 [3,17]", "nn.reduce_sum %a0 {{dim = 1 : i64}} : ({ins}) -> {out}", [T(3, 17)],
     lambda x: x.sum(1))
case("reduce_mean dim=0 keepdim [3,17]", "nn.reduce_mean %a0 {{dim = 0 : i64, keepdim}} : ({ins}) -> {out}",
     [T(3, 17)], lambda x: x.mean(0, keepdim=True))
case("reduce_sum all [3,5]", "nn.reduce_sum %a0 : ({ins}) -> {out}", [T(3, 5)], lambda x: x.sum())
case("concat dim=1", "nn.concat %a0, %a1 {{dim = 1 : i64}} : ({ins}) -> {out}", [T(3, 2), T(3, 5)],
     lambda x, y: torch.cat([x, y], 1))
case("slice [4,17] stride 3", "nn.slice %a0 {{start = array<i64: 1, 0>, limit = array<i64: 4, 17>, "
     "stride = array<i64: 1, 3>}} : ({ins}) -> {out}", [T(4, 17)], lambda x: x[1:4, 0:17:3])


def slices(boxes, width=12):
    """Slices [lo, hi) of the last dimension of a [2, 3, width] tensor,
    multiplied: their gradient is a sum of slice_grads."""
    lines = []
    for i, (lo, hi) in enumerate(boxes):
        lines.append(f"%s{i} = nn.slice %a0 {{{{start = array<i64: 0, 0, {lo}>, "
                     f"limit = array<i64: 2, 3, {hi}>, stride = array<i64: 1, 1, 1>}}}} : "
                     f"(tensor<2x3x{width}xf32>) -> tensor<2x3x{hi - lo}xf32>")
    t = f"tensor<2x3x{boxes[0][1] - boxes[0][0]}xf32>"
    for i in range(1, len(boxes)):
        prev = "%s0" if i == 1 else f"%m{i - 1}"
        lines.append(f"%m{i} = nn.mul {prev}, %s{i} : ({t}, {t}) -> {t}")
    lines[-1] = lines[-1].split(" = ", 1)[1]
    return "\n".join(lines)


def product_of_slices(boxes):
    def ref(x):
        out = x[..., boxes[0][0]:boxes[0][1]]
        for lo, hi in boxes[1:]:
            out = out * x[..., lo:hi]
        return out
    return ref


# Sums of slice_grads: disjoint boxes covering the tensor (q, k and v of a
# fused projection), disjoint boxes with a gap, overlapping boxes.
for label, boxes in [("q,k,v", [(0, 4), (4, 8), (8, 12)]),
                     ("with a gap", [(0, 4), (6, 10)]),
                     ("overlapping", [(0, 6), (4, 10)])]:
    case(f"slices {label} [2,3,12]", slices(boxes), [T(2, 3, 12)], product_of_slices(boxes))

# Attention and the row reductions also through the GPU pipeline (run as
# CPU loops): there attention is the flash lowering, whose backward pass is
# three loops of its own, softmax, the norms and cross-entropy are row
# kernels (one loop per row, forward and backward), and the embedding
# gradient is a loop per (block of table rows, column).
cases += [(label + " (gpu)", op_text, ins, ref)
          for label, op_text, ins, ref in cases
          if label.startswith(("attention", "softmax", "layer_norm", "rms_norm", "cross_entropy",
                               "embedding"))]

# Heads of 64, 96 and 80: on the GPU, dq and dk are computed by 2, 3 and 4
# threads per row, each owning 32, 32 and 20 columns of the accumulator. Their inputs come from
# a generator of their own, and they go last, so that the cases above see
# the same random draws as before they were added.
wide = torch.Generator().manual_seed(64)


def W(*shape):
    return torch.randn(*shape, generator=wide)


for suffix in ("", " (gpu)"):
    cases += [
        ("attention causal [2,6,64]" + suffix, "nn.attention %a0, %a1, %a2 {{causal}} : ({ins}) -> {out}",
         [W(2, 6, 64), W(2, 6, 64), W(2, 6, 64)], lambda q, k, v: attn(q, k, v, True)),
        ("attention [2,5,96]x[2,9,96]->[2,5,64]" + suffix,
         "nn.attention %a0, %a1, %a2 : ({ins}) -> {out}",
         [W(2, 5, 96), W(2, 9, 96), W(2, 9, 64)], lambda q, k, v: attn(q, k, v, False)),
        ("attention causal [1,7,80]" + suffix, "nn.attention %a0, %a1, %a2 {{causal}} : ({ins}) -> {out}",
         [W(1, 7, 80), W(1, 7, 80), W(1, 7, 80)], lambda q, k, v: attn(q, k, v, True))]

failed = 0
for n, (label, op_text, ins, ref) in enumerate(cases):
    out_shape = list(ref(*ins).shape)
    R = torch.randn(out_shape)
    text = module(op_text, ins, out_shape).replace("{R}", dense(R))
    d = os.path.join(work, f"case{n}")
    os.makedirs(d, exist_ok=True)
    open(f"{d}/case.mlir", "w").write(text)
    target = ["--target", "gpu-emulator"] if label.endswith("(gpu)") else []
    subprocess.run([tessera, "compile", f"{d}/case.mlir", "-o", f"{d}/case.tsrpkg"] + target,
                   check=True)
    params = {f"p{i}": t for i, t in enumerate(ins) if t.is_floating_point()}

    def run(entry, weights, outputs):
        write_safetensors(f"{d}/w.safetensors", weights)
        args = [tessera, "run", f"{d}/case.tsrpkg", "--entry", entry, "--weights", f"{d}/w.safetensors"]
        for o in outputs:
            args += ["--output", f"{o}={d}/{o}.npy"]
        subprocess.run(args, check=True, capture_output=True)
        return {o: torch.from_numpy(np.load(f"{d}/{o}.npy")) for o in outputs}

    got = run("train_step", params, ["loss"] + [f"grad.{p}" for p in params])
    worst = theirs = 0.0
    refs = {}
    for dtype in (torch.float64, torch.float32):
        xs = [t.detach().to(dtype).requires_grad_() if t.is_floating_point() else t for t in ins]
        (ref(*xs) * R.to(dtype)).sum().backward()
        refs[dtype] = {f"p{i}": x.grad for i, x in enumerate(xs) if x.is_floating_point()}
    for p in params:
        truth = refs[torch.float64][p]
        worst = max(worst, error(got[f"grad.{p}"], truth))
        theirs = max(theirs, error(refs[torch.float32][p].double(), truth))
    # Finite differences of the compiled f32 loss along a random direction.
    direction = {p: torch.randn(t.shape) for p, t in params.items()}
    scale = math.sqrt(sum((t * t).sum().item() for t in params.values()) /
                      sum((t * t).sum().item() for t in direction.values()))
    h = 1e-2 * scale

    def central(h):
        plus = run("loss", {p: t + h * direction[p] for p, t in params.items()}, ["output"])["output"]
        minus = run("loss", {p: t - h * direction[p] for p, t in params.items()}, ["output"])["output"]
        return (plus.double() - minus.double()).item() / (2 * h)
    # Richardson: the h^2 term of the central difference cancels, which
    # matters where the loss curves sharply (a peaked softmax).
    fd = (4 * central(h / 2) - central(h)) / 3
    analytic = sum((got[f"grad.{p}"].double() * direction[p].double()).sum().item() for p in params)
    fd_err = abs(fd - analytic) / max(abs(analytic), 1e-3)
    ok = worst <= 1e-5 and fd_err <= 1e-2
    failed += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {label:42s} grad error {worst:.2e} (torch f32 {theirs:.2e}), "
          f"finite difference {fd_err:.1e}")
print(f"grads: {len(cases)} checked, {failed} failed")
sys.exit(1 if failed else 0)
