"""Whole-model gradients: the `train_step` entry of the examples' packages
(loss and the gradient of every parameter, from tessera-autodiff) against
PyTorch autograd on the same weights and batch. Error = max over parameters
of max |tessera - f64| / max |f64|; bound 1e-5 (torch's own f32 error
printed beside).

Usage: train_step_vs_torch.py BIN_DIR EXAMPLES_DIR WORK_DIR
"""
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

from gpt_spec import gpt_reference
from mlir_harness import error
from st_io import compile_package, read_safetensors, write_safetensors

bin_dir, examples, work = sys.argv[1:4]
os.makedirs(work, exist_ok=True)
torch.manual_seed(3)
failed = False


def train_step(pkg, inputs, weights, names):
    write_safetensors(f"{work}/w.safetensors", weights)
    args = [os.path.join(bin_dir, "tessera"), "run", pkg, "--entry", "train_step",
            "--weights", f"{work}/w.safetensors"]
    for k, t in inputs.items():
        np.save(f"{work}/{k}.npy", t.numpy())
        args += ["--input", f"{k}={work}/{k}.npy"]
    for n in names:
        args += ["--output", f"{n}={work}/{n}.npy"]
    subprocess.run(args, check=True)
    return {n: torch.from_numpy(np.load(f"{work}/{n}.npy")) for n in names}


def check(label, pkg, manifest, inputs, W, loss_fn):
    global failed
    names = [o["name"] for o in next(e for e in manifest["entry_points"]
                                     if e["name"] == "train_step")["outputs"]]
    got = train_step(pkg, inputs, W, names)
    res = {}
    for dtype in (torch.float64, torch.float32):
        Wd = {k: v.to(dtype).requires_grad_() for k, v in W.items()}
        loss = loss_fn(Wd, dtype)
        loss.backward()
        res[dtype] = (loss.detach(), {k: v.grad for k, v in Wd.items()})
    loss_err = abs(got["loss"].item() - res[torch.float64][0].item()) / abs(res[torch.float64][0].item())
    ours = max(error(got["grad." + k], res[torch.float64][1][k]) for k in W)
    theirs = max(error(res[torch.float32][1][k].double(), res[torch.float64][1][k]) for k in W)
    ok = ours <= 1e-5 and loss_err <= 1e-5
    failed |= not ok
    print(f"{label}: loss {got['loss'].item():.6f} (rel. error {loss_err:.2g}), {len(W)} gradients: "
          f"max error {ours:.3g} (torch f32: {theirs:.3g}), bound 1e-05: {'ok' if ok else 'FAILED'}")


pkg = f"{work}/mlp.tsrpkg"
manifest = compile_package(bin_dir, os.path.join(examples, "fashion_mlp.tsr"), "fit", pkg)
W = {k: v + 0.05 * torch.randn(v.shape) for k, v in read_safetensors(f"{pkg}/weights.safetensors").items()}
x = torch.rand(128, 784)
y = torch.randint(0, 10, (128,), dtype=torch.int32)


def mlp_loss(w, dt):
    h = F.relu(F.linear(x.to(dt), w["mlp.fc.weight"], w["mlp.fc.bias"]))
    h = F.relu(F.linear(h, w["mlp.proj.weight"], w["mlp.proj.bias"]))
    return F.cross_entropy(F.linear(h, w["head.weight"], w["head.bias"]), y.long())


check("mlp train_step", pkg, manifest, {"x": x, "y": y}, W, mlp_loss)

pkg = f"{work}/gpt.tsrpkg"
manifest = compile_package(bin_dir, os.path.join(examples, "kjv_gpt.tsr"), "pretrain", pkg)
W = {k: v + 0.02 * torch.randn(v.shape) for k, v in read_safetensors(f"{pkg}/weights.safetensors").items()}
V, D = W["wte.weight"].shape
L = sum(1 for k in W if k.endswith(".attn.qkv.weight"))
x = torch.randint(0, V, (32, 128), dtype=torch.int32)
y = torch.randint(0, V, (32, 128), dtype=torch.int32)


def gpt_loss(w, dt):
    logits = gpt_reference(w, x, L, D, 4, dt)
    return F.cross_entropy(logits.reshape(-1, V), y.reshape(-1).long())


check("gpt train_step", pkg, manifest, {"x": x, "y": y}, W, gpt_loss)
sys.exit(1 if failed else 0)
