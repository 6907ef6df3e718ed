"""The examples as packages, checked against PyTorch.

For examples/fashion_mlp.tsr and examples/kjv_gpt.tsr (its small config):
`tessera compile -o X.tsrpkg`, then `tessera run` on random inputs, once with
the package's own weights (initialized from the spec with its seed) and once
with different weights written by this script (`--weights`); the reference
is an independent PyTorch implementation reading the same safetensors with
its own parser. Error = max |tessera - f64| / max |f64| (f32 logits), bound
1e-5; PyTorch's own f32 error is printed for scale.

Usage: package_vs_torch.py BIN_DIR EXAMPLES_DIR WORK_DIR
"""
import os
import sys

import torch
import torch.nn.functional as F

from gpt_spec import gpt_reference
from mlir_harness import error
from st_io import compile_package, read_safetensors, tessera_run, write_safetensors

bin_dir, examples, work = sys.argv[1:4]
os.makedirs(work, exist_ok=True)
torch.manual_seed(0)
failed = False


def check(label, got, ref):
    global failed
    truth, torch32 = ref(torch.float64), ref(torch.float32).double()
    ours, theirs = error(got, truth), error(torch32, truth)
    ok = ours <= 1e-5 and got.shape == truth.shape
    failed |= not ok
    print(f"{label}: logits {tuple(got.shape)}: max |tessera - f64| / max |f64| = "
          f"{ours:.3g} (torch f32: {theirs:.3g}), bound 1e-05: {'ok' if ok else 'FAILED'}")


def perturbed(weights, scale):
    """Weights of the same shapes, far from the initialization."""
    return {k: v + scale * torch.randn(v.shape) for k, v in weights.items()}


# --- Fashion-MNIST MLP ---------------------------------------------------------
pkg = os.path.join(work, "mlp.tsrpkg")
manifest = compile_package(bin_dir, os.path.join(examples, "fashion_mlp.tsr"), "fit", pkg)
(x_spec,) = manifest["entry_points"][0]["inputs"]
x = torch.rand(*x_spec["shape"])


def mlp(W):
    def ref(dtype):
        w = {k: v.to(dtype) for k, v in W.items()}
        h = F.relu(F.linear(x.to(dtype), w["mlp.fc.weight"], w["mlp.fc.bias"]))
        h = F.relu(F.linear(h, w["mlp.proj.weight"], w["mlp.proj.bias"]))
        return F.linear(h, w["head.weight"], w["head.bias"])
    return ref


W = read_safetensors(os.path.join(pkg, "weights.safetensors"))
print(f"mlp: {len(W)} parameters, seed {manifest['seed']}, "
      f"mlp.fc.weight std {W['mlp.fc.weight'].std():.4f} (spec: normal(0.02))")
check("mlp, package weights", tessera_run(bin_dir, pkg, {"x": x}, work), mlp(W))
W2 = perturbed(W, 0.1)
write_safetensors(os.path.join(work, "mlp2.safetensors"), W2)
check("mlp, --weights", tessera_run(bin_dir, pkg, {"x": x}, work,
                                    ["--weights", os.path.join(work, "mlp2.safetensors")]),
      mlp(W2))

# --- KJV char-GPT (small config) -----------------------------------------------
pkg = os.path.join(work, "gpt.tsrpkg")
manifest = compile_package(bin_dir, os.path.join(examples, "kjv_gpt.tsr"), "pretrain", pkg)
(idx_spec,) = manifest["entry_points"][0]["inputs"]
W = read_safetensors(os.path.join(pkg, "weights.safetensors"))
V, D = W["wte.weight"].shape
L = sum(1 for k in W if k.endswith(".attn.qkv.weight"))
H = 4  # examples/kjv_gpt.tsr: GPT(..., dim=128, heads=4, depth=4)
idx = torch.randint(0, V, idx_spec["shape"], dtype=torch.int32)
print(f"gpt: {len(W)} parameters, vocab {V}, dim {D}, depth {L}, tokens {idx_spec['shape']}")
check("gpt, package weights", tessera_run(bin_dir, pkg, {"idx": idx}, work),
      lambda dt: gpt_reference(W, idx, L, D, H, dt))
W2 = perturbed(W, 0.05)
write_safetensors(os.path.join(work, "gpt2.safetensors"), W2)
check("gpt, --weights", tessera_run(bin_dir, pkg, {"idx": idx}, work,
                                    ["--weights", os.path.join(work, "gpt2.safetensors")]),
      lambda dt: gpt_reference(W2, idx, L, D, H, dt))
sys.exit(1 if failed else 0)
