"""Compiles a small char-GPT with `tessera compile`, lowers it to the CPU
through convert-nn-to-linalg and MLIR's pipeline, runs it with mlir-runner on
random weights and tokens, and compares the logits with an independent
PyTorch implementation of the same model (f32; the error, max |tessera - f64 reference| over max |f64 reference|, must
be <= 1e-5; torch's own f32 error is printed for scale).

Usage: gpt_vs_torch.py BIN_DIR LLVM_LIB_DIR WORK_DIR
"""
import math
import os
import re
import subprocess
import sys

import torch
import torch.nn.functional as F

bin_dir, lib_dir, work = sys.argv[1:4]
os.makedirs(work, exist_ok=True)
V, C, D, H, L, B, T = 11, 8, 16, 2, 2, 2, 8

spec = f"""
import nn
model GPT(vocab: int, ctx: int, dim: int, heads: int, depth: int) {{
  wte = Embedding(vocab, dim)
  wpe = Embedding(ctx, dim)
  blocks = repeat(depth) Block(dim, heads)
  ln_f = LayerNorm(dim)
  fn forward(idx: i32[B, T]) -> f32[B, T, vocab] {{
    let h = wte(idx) + wpe(arange(T))
    return matmul(ln_f(blocks(h)), transpose(wte.weight))
  }}
}}
data toks = tokens("unused.bin", seq={T}, batch={B})
train t {{
  model = GPT({V}, {C}, {D}, {H}, {L})
  data = toks
  loss = cross_entropy(model(x), y)
  optimizer = AdamW(lr=1e-3)
  steps = 1
}}
"""
open(os.path.join(work, "gpt.tsr"), "w").write(spec)
nn_ir = subprocess.run([os.path.join(bin_dir, "tessera"), "compile",
                        os.path.join(work, "gpt.tsr"), "-e", "t"],
                       check=True, capture_output=True, text=True).stdout

# Parameters in argument order, with their shapes, from the generated IR.
sig = nn_ir[nn_ir.index("func.func @forward("):]
sig = sig[:sig.index("{\n")]
params = re.findall(r"tensor<([0-9x]+)xf32> \{tessera.init = \"[^\"]*\", tessera.param = \"([^\"]+)\"\}", sig)

torch.manual_seed(0)
weights = {}
for shape, path in params:
    dims = [int(d) for d in shape.split("x")]
    w = torch.randn(*dims) * 0.3
    if path.endswith("ln1.weight") or path.endswith("ln2.weight") or path == "ln_f.weight":
        w = 1.0 + 0.1 * torch.randn(*dims)
    weights[path] = w
idx = torch.randint(0, V, (B, T), dtype=torch.int32)


def dense(t):
    if t.dim() == 0:
        return repr(float(t))
    return "[" + ", ".join(dense(x) if x.dim() else repr(float(x)) if t.is_floating_point() else str(int(x)) for x in t) + "]"


def ty(t, et):
    return "tensor<" + "x".join(str(d) for d in t.shape) + "x" + et + ">"


main = ["  func.func @main() {"]
args, types = [], []
main.append(f"    %x = arith.constant dense<{dense(idx)}> : {ty(idx, 'i32')}")
args.append("%x"); types.append(ty(idx, "i32"))
for i, (_, path) in enumerate(params):
    w = weights[path]
    main.append(f"    %p{i} = arith.constant dense<{dense(w)}> : {ty(w, 'f32')}")
    args.append(f"%p{i}"); types.append(ty(w, "f32"))
out_ty = f"tensor<{B}x{T}x{V}xf32>"
main.append(f"    %r = call @forward({', '.join(args)}) : ({', '.join(types)}) -> {out_ty}")
# Print the raw bits so the comparison sees every digit of the f32 results.
bits_ty = out_ty.replace("xf32>", "xi32>")
main.append(f"    %e = tensor.empty() : {bits_ty}")
main.append("    %bits = linalg.generic {indexing_maps = [affine_map<(a, b, c) -> (a, b, c)>, "
            "affine_map<(a, b, c) -> (a, b, c)>], iterator_types = [\"parallel\", \"parallel\", "
            f"\"parallel\"]}} ins(%r : {out_ty}) outs(%e : {bits_ty}) {{\n"
            "    ^bb0(%in: f32, %o: i32):\n"
            "      %c = arith.bitcast %in : f32 to i32\n"
            "      linalg.yield %c : i32\n"
            f"    }} -> {bits_ty}")
main.append(f"    %u = tensor.cast %bits : {bits_ty} to tensor<*xi32>")
main.append("    call @printMemrefI32(%u) : (tensor<*xi32>) -> ()")
main.append("    return")
main.append("  }")
# Insert @main before the module's closing brace (location aliases follow it).
end = nn_ir.rindex("\n}")
text = nn_ir[:end] + "\n" + "\n".join(main) + nn_ir[end:]
text = text.replace("module {", "module {\n  func.func private @printMemrefI32(tensor<*xi32>)", 1)
open(os.path.join(work, "gpt.mlir"), "w").write(text)

# The same registered pipeline as `tessera compile --emit=llvm`.
lower = [os.path.join(bin_dir, "tessera-opt"), os.path.join(work, "gpt.mlir"),
         "--tessera-lower-to-llvm"]
llvm_ir = subprocess.run(lower, check=True, capture_output=True, text=True).stdout
runner = os.path.join(os.path.dirname(lib_dir), "bin", "mlir-runner")
out = subprocess.run([runner, "-e", "main", "-entry-point-result=void",
                      f"-shared-libs={lib_dir}/libmlir_runner_utils.so,{lib_dir}/libmlir_c_runner_utils.so"],
                     input=llvm_ir, check=True, capture_output=True, text=True).stdout
body = out[out.index("data =") + len("data ="):]
got = torch.tensor([int(v) for v in re.findall(r"-?\d+", body)],
                   dtype=torch.int32).view(torch.float32).reshape(B, T, V)

# Independent reference: the same GPT written directly in PyTorch.
def ref(dtype):
    W = {k: v.to(dtype) for k, v in weights.items()}
    h = F.embedding(idx.long(), W["wte.weight"]) + F.embedding(torch.arange(T), W["wpe.weight"])
    for l in range(L):
        p = f"blocks.{l}."
        a = F.layer_norm(h, (D,), W[p + "ln1.weight"], W[p + "ln1.bias"], 1e-5)
        qkv = F.linear(a, W[p + "attn.qkv.weight"], W[p + "attn.qkv.bias"])
        q, k, v = qkv.split(D, dim=-1)
        q, k, v = (t.reshape(B, T, H, D // H).transpose(1, 2) for t in (q, k, v))
        s = q @ k.transpose(-1, -2) / math.sqrt(D // H)
        s = s.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
        y = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D)
        h = h + F.linear(y, W[p + "attn.proj.weight"], W[p + "attn.proj.bias"])
        m = F.layer_norm(h, (D,), W[p + "ln2.weight"], W[p + "ln2.bias"], 1e-5)
        m = F.gelu(F.linear(m, W[p + "mlp.fc.weight"], W[p + "mlp.fc.bias"]), approximate="tanh")
        h = h + F.linear(m, W[p + "mlp.proj.weight"], W[p + "mlp.proj.bias"])
    h = F.layer_norm(h, (D,), W["ln_f.weight"], W["ln_f.bias"], 1e-5)
    return h @ W["wte.weight"].T

# The f64 reference is the ground truth; torch's own f32 result is printed
# beside ours to show the rounding noise expected at this precision.
truth = ref(torch.float64)
torch32 = ref(torch.float32).double()
scale = truth.abs().max().item()
ours = (got.double() - truth).abs().max().item() / scale
theirs = (torch32 - truth).abs().max().item() / scale
ok = ours <= 1e-5
print(f"params {len(params)}, logits {tuple(truth.shape)}: max |tessera - f64| / max |f64| = "
      f"{ours:.3g} (torch f32: {theirs:.3g}), bound 1e-05: {'ok' if ok else 'FAILED'}")
sys.exit(0 if ok else 1)
