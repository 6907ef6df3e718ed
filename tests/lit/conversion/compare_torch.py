"""Compares mlir-runner's printMemrefF32 output with a PyTorch reference.

Usage: compare_torch.py OUTPUT CASE   (CASE names a reference below)
"""
import re
import sys

import torch
import torch.nn.functional as F


def mlp():
    x = torch.tensor([[0.5, -1.25, 2.0], [1.5, 0.25, -0.75]])
    w = torch.tensor([[0.1, 0.2, -0.3], [0.4, -0.5, 0.6], [-0.7, 0.8, 0.9], [1.0, -1.1, 0.05]])
    b = torch.tensor([0.01, -0.02, 0.03, -0.04])
    m = torch.tensor([[0.3, -0.6], [0.9, 0.2], [-0.4, 0.7], [0.5, -0.8]])
    s = F.silu(F.gelu(F.linear(x, w, b), approximate="tanh") @ m)
    return (s - s.T) * s + s


CASES = {"mlp": mlp}

text = open(sys.argv[1]).read()
body = text[text.index("data =") + len("data ="):]
got = torch.tensor([float(v) for v in re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", body)])
want = CASES[sys.argv[2]]().flatten()
if got.numel() != want.numel():
    print(f"element count differs: got {got.numel()}, want {want.numel()}")
    sys.exit(1)
rel = ((got - want).abs() / want.abs().clamp_min(1e-6)).max().item()
status = "ok" if rel <= 1e-5 else "FAILED"
print(f"max relative error {rel:.3g} <= 1e-05: {status}")
sys.exit(0 if status == "ok" else 1)
