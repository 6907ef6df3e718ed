"""The optimizer step's gradient norm (what clipping divides by) against
NumPy in f64, on the KJV char-GPT's 819968 gradients (random values), for
the CPU package and, as a GPU package's numbers, the GPU emulator's.
Summed one term after another in f32 the norm was 1.9e-4 off; split into
sqrt(N) partial sums (tessera-split-reductions) it is ~2e-7. Bound 1e-5.

Usage: grad_norm_vs_f64.py BINDIR WORKDIR
"""
import json
import os
import subprocess
import sys

import numpy as np

bindir, work = sys.argv[1:3]
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
tessera = os.path.join(bindir, "tessera")
os.makedirs(work, exist_ok=True)
failed = False
for target in ("cpu", "gpu-emulator"):
    pkg = f"{work}/kjv-{target}.tsrpkg"
    subprocess.run([tessera, "compile", os.path.join(root, "examples/kjv_gpt.tsr"), "-e", "pretrain",
                    "--target", target, "-o", pkg], check=True)
    entry = next(e for e in json.load(open(f"{pkg}/manifest.json"))["entry_points"]
                 if e["name"] == "optimizer_step")
    rng = np.random.default_rng(0)
    args = []
    for spec in entry["inputs"]:
        if spec["name"] == "hyper":  # lr, betas, eps, weight decay, bias corrections
            value = np.array([1e-3, 0.9, 0.99, 1e-8, 0.1, 0.1, 0.01], np.float32)
        else:
            value = (rng.standard_normal(spec["shape"]) * 0.01).astype(np.float32)
        np.save(f"{work}/{spec['name']}.npy", value)
        args += ["--input", f"{spec['name']}={work}/{spec['name']}.npy"]
    subprocess.run([tessera, "run", pkg, "--entry", "optimizer_step",
                    "--output", f"grad_norm={work}/norm-{target}.npy"] + args,
                   check=True, stdout=subprocess.DEVNULL)
    grads = np.load(f"{work}/grads.npy").astype(np.float64)
    reference = np.sqrt((grads * grads).sum())
    got = float(np.load(f"{work}/norm-{target}.npy"))
    err = abs(got - reference) / reference
    ok = err <= 1e-5
    failed |= not ok
    print(f"{target}: gradient norm of {grads.size} values {got:.9g}, f64 {reference:.9g}, "
          f"relative error {err:.1e} (bound 1e-5): {'ok' if ok else 'FAILED'}")
sys.exit(1 if failed else 0)
