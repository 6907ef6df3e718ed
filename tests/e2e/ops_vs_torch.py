"""Op-level numerics: every nn op, lowered and run on the CPU, against
PyTorch in f64 on random shapes that include the odd sizes 1, 3 and 17.
Bound: normwise relative error <= 1e-5 in f32 (torch's own f32 error is
printed beside ours). Usage: ops_vs_torch.py BIN_DIR LLVM_LIB_DIR
"""
import math
import sys

import torch
import torch.nn.functional as F

from mlir_harness import error, run, tensor_type

bin_dir, lib_dir = sys.argv[1:3]
torch.manual_seed(1)
f32 = torch.float32


def T(*shape):
    return torch.randn(*shape)


def fn(op_text, ins, out_shape, out_elem="f32"):
    args = ", ".join(f"%a{i}: {tensor_type(list(t.shape), 'f32' if t.is_floating_point() else 'i32')}"
                     for i, t in enumerate(ins))
    out_ty = tensor_type(out_shape, out_elem)
    return (f"  func.func @f({args}) -> {out_ty} {{\n"
            f"    %r = {op_text.format(out=out_ty, ins=', '.join(tensor_type(list(t.shape), 'f32' if t.is_floating_point() else 'i32') for t in ins))}\n"
            f"    return %r : {out_ty}\n  }}")


def binop(name, a, b):
    return f"nn.{name} %a0, %a1 : ({{ins}}) -> {{out}}"


cases = []


def case(label, op_text, ins, ref, out_dtype=f32):
    cases.append((label, op_text, ins, ref, out_dtype))


a, b = T(3, 1, 17), T(17)
case("add [3,1,17]+[17]", "nn.add %a0, %a1 : ({ins}) -> {out}", [a, b], lambda x, y: x + y)
a, b = T(1, 3), T(5, 1)
case("sub [1,3]-[5,1]", "nn.sub %a0, %a1 : ({ins}) -> {out}", [a, b], lambda x, y: x - y)
case("mul [3,17]*[3,17]", "nn.mul %a0, %a1 : ({ins}) -> {out}", [T(3, 17), T(3, 17)], lambda x, y: x * y)
d = T(4, 3).abs() + 0.5
case("div [2,4,3]/[4,3]", "nn.div %a0, %a1 : ({ins}) -> {out}", [T(2, 4, 3), d], lambda x, y: x / y)
for name, ref in [("relu", F.relu), ("gelu", lambda x: F.gelu(x, approximate="tanh")), ("silu", F.silu)]:
    case(f"{name} [1,3,17]", f"nn.{name} %a0 : {{out}}", [T(1, 3, 17) * 3], ref)
for dim in (-1, 0, 1):
    case(f"softmax dim={dim} [3,17]", f"nn.softmax %a0 {{{{dim = {dim} : i64}}}} : {{out}}",
         [T(3, 17) * 4], lambda x, dim=dim: x.softmax(dim))
case("linear+bias [3,17]x[5,17]", "nn.linear %a0, %a1, %a2 : ({ins}) -> {out}",
     [T(3, 17), T(5, 17), T(5)], F.linear)
case("linear [2,1,3]x[1,3]", "nn.linear %a0, %a1 : ({ins}) -> {out}", [T(2, 1, 3), T(1, 3)],
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
# Row widths that take the GPU row kernels' 4- and 2-lane chunks, and a
# softmax row that starts with -inf (and one that is all -inf but one).
case("softmax [2,3,12]", "nn.softmax %a0 {{dim = -1 : i64}} : {out}",
     [T(2, 3, 12) * 4], lambda x: x.softmax(-1))
masked = T(3, 6)
masked[0, :2] = float("-inf")
masked[1, :5] = float("-inf")
case("softmax -inf [3,6]", "nn.softmax %a0 {{dim = 1 : i64}} : {out}", [masked],
     lambda x: x.softmax(-1))
case("layer_norm [2,3,12]", "nn.layer_norm %a0, %a1, %a2 {{eps = 1.0e-05 : f64}} : ({ins}) -> {out}",
     [T(2, 3, 12) * 3 + 2, T(12), T(12)], lambda x, w, b: F.layer_norm(x, (12,), w, b, 1e-5))
case("rms_norm [5,6]", "nn.rms_norm %a0, %a1 {{eps = 1.0e-06 : f64}} : ({ins}) -> {out}",
     [T(5, 6), T(6)], lambda x, w: x * torch.rsqrt((x * x).mean(-1, keepdim=True) + 1e-6) * w)
idx = torch.randint(0, 17, (3, 1), dtype=torch.int32)
case("embedding [17,5][idx 3x1]", "nn.embedding %a0, %a1 : ({ins}) -> {out}", [T(17, 5), idx],
     lambda w, i: F.embedding(i.long(), w))


def attn(q, k, v, causal, scale=None):
    s = q @ k.transpose(-1, -2) * (scale if scale else 1 / math.sqrt(q.shape[-1]))
    if causal:
        n = s.shape[-1]
        s = s.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool), 1), float("-inf"))
    return s.softmax(-1) @ v


q = [T(2, 3, 5, 4), T(2, 3, 5, 4), T(2, 3, 5, 7)]
case("attention causal", "nn.attention %a0, %a1, %a2 {{causal}} : ({ins}) -> {out}", q,
     lambda a, b, c: attn(a, b, c, True))
q2 = [T(1, 3, 4), T(1, 17, 4), T(1, 17, 2)]
case("attention 2-D [3,4]", "nn.attention %a0, %a1, %a2 {{causal}} : ({ins}) -> {out}",
     [T(3, 4), T(3, 4), T(3, 4)], lambda a, b, c: attn(a, b, c, True))
case("attention scale=0.3", "nn.attention %a0, %a1, %a2 {{scale = 3.0e-01 : f64}} : ({ins}) -> {out}", q2,
     lambda a, b, c: attn(a, b, c, False, 0.3))
t = torch.randint(0, 17, (3,), dtype=torch.int32)
case("cross_entropy [3,17]", "nn.cross_entropy %a0, %a1 : ({ins}) -> {out}", [T(3, 17) * 3, t],
     lambda l, y: F.cross_entropy(l, y.long()))
t2 = torch.randint(0, 5, (2, 3), dtype=torch.int32)
case("cross_entropy [2,3,5]", "nn.cross_entropy %a0, %a1 : ({ins}) -> {out}", [T(2, 3, 5), t2],
     lambda l, y: F.cross_entropy(l.reshape(-1, 5), y.reshape(-1).long()))
t3 = torch.randint(0, 8, (2, 3), dtype=torch.int32)
case("cross_entropy [2,3,8]", "nn.cross_entropy %a0, %a1 : ({ins}) -> {out}", [T(2, 3, 8) * 3, t3],
     lambda l, y: F.cross_entropy(l.reshape(-1, 8), y.reshape(-1).long()))
case("reshape [3,1,4]->[2,6]", "nn.reshape %a0 : ({ins}) -> {out}", [T(3, 1, 4)], lambda x: x.reshape(2, 6))
case("transpose [2,3,5] 0<->2", "nn.transpose %a0 {{dim0 = 0 : i64, dim1 = 2 : i64}} : ({ins}) -> {out}",
     [T(2, 3, 5)], lambda x: x.transpose(0, 2))
case("slice [4,17] stride 3", "nn.slice %a0 {{start = array<i64: 1, 2>, limit = array<i64: 4, 17>, stride = array<i64: 2, 3>}} : ({ins}) -> {out}",
     [T(4, 17)], lambda x: x[1:4:2, 2:17:3])
case("concat dim=1", "nn.concat %a0, %a1 {{dim = 1 : i64}} : ({ins}) -> {out}", [T(2, 1), T(2, 3)],
     lambda x, y: torch.cat([x, y], 1))
case("reduce_sum dim=1", "nn.reduce_sum %a0 {{dim = 1 : i64}} : ({ins}) -> {out}", [T(3, 17)], lambda x: x.sum(1))
case("reduce_mean keepdim", "nn.reduce_mean %a0 {{dim = -1 : i64, keepdim}} : ({ins}) -> {out}", [T(2, 3, 5)],
     lambda x: x.mean(-1, keepdim=True))
case("reduce_max all", "nn.reduce_max %a0 : ({ins}) -> {out}", [T(3, 17)], lambda x: x.max())

failed = 0
cases_run = [0]
for label, op_text, ins, ref, out_dtype in cases:
    want = ref(*[x.double() if x.is_floating_point() else x for x in ins])
    torch32 = ref(*ins).double()
    out_shape = list(want.shape)
    module = fn(op_text, ins, out_shape)
    # Contractions have two lowerings (BLAS kernel calls, loop nests): check both.
    pipelines = ["--tessera-lower-to-llvm"]
    if label.startswith(("linear", "matmul", "attention")):
        pipelines.append("--tessera-lower-to-llvm-loops")
    if label.startswith(("attention", "softmax", "layer_norm", "rms_norm", "cross_entropy")):
        # The GPU pipeline's own lowerings (flash attention, row kernels),
        # run as CPU loops.
        pipelines.append("--tessera-gpu-emulator")
    for pipeline in pipelines:
        got = run(bin_dir, lib_dir, module, "f", ins, out_shape, out_dtype, pipeline)
        err, err32 = error(got, want), error(torch32, want)
        ok = err <= 1e-5
        failed += not ok
        tag = {"--tessera-lower-to-llvm-loops": " (loops)",
               "--tessera-gpu-emulator": " (gpu)"}.get(pipeline, "")
        print(f"{'ok  ' if ok else 'FAIL'} {label + tag:32s} error {err:.2e} (torch f32 {err32:.2e})")
        cases_run[0] += 1

# arange has an integer result: compare exactly.
got = run(bin_dir, lib_dir, "  func.func @f() -> tensor<17xi32> {\n    %r = nn.arange : tensor<17xi32>\n"
          "    return %r : tensor<17xi32>\n  }", "f", [], [17], torch.int32)
ok = torch.equal(got, torch.arange(17, dtype=torch.int32))
failed += not ok
print(f"{'ok  ' if ok else 'FAIL'} arange 17 exact")
print(f"ops: {cases_run[0] + 1} checked, {failed} failed")
sys.exit(1 if failed else 0)
