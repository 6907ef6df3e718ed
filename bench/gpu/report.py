"""bench/gpu.sh's checks and numbers (python3 with numpy, on the GPU machine).

  report.py set-data PKG PATH      point the package's training data at PATH
  report.py compare NAME BOUND REF_METRICS GPU_METRICS REF_Y GPU_Y
                                   GPU vs CPU: per-step loss and grad norm,
                                   validation loss and forward logits, max
                                   relative error against BOUND; exit 1 above
  report.py gemm PROFILE N         TFLOP/s of the N^3 GEMM's mma kernel
  report.py gpt2 METRICS PKG       tokens/s and MFU of a GPT-2 training run
"""
import json
import os
import re
import statistics
import subprocess
import sys

import numpy as np


def gpu_name():
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True)
    except OSError:
        return "unknown GPU"
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 else "unknown GPU"


def dense_bf16_peak(name):
    """Dense (no sparsity) bf16 tensor-core peak in FLOP/s, from NVIDIA's
    data sheets; None when the GPU is not one of these."""
    n = name.upper()
    if "H100" in n and "PCIE" in n:
        return 756e12
    if "H100" in n or "H200" in n or "GH200" in n:
        return 989.4e12
    if "A100" in n:
        return 312e12
    return None


def set_data(pkg, path):
    manifest = f"{pkg}/manifest.json"
    m = json.load(open(manifest))
    train = json.loads(m["train"]) if isinstance(m["train"], str) else m["train"]
    train["data"]["path"] = path
    m["train"] = json.dumps(train) if isinstance(m["train"], str) else train
    with open(manifest + ".tmp", "w") as f:
        json.dump(m, f, indent=2)
    os.replace(manifest + ".tmp", manifest)


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-30)


def compare(name, bound, ref_metrics, gpu_metrics, ref_y, gpu_y):
    bound = float(bound)
    def values(path):
        out = {}
        for line in open(path):
            r = json.loads(line)
            for key in ("loss", "grad_norm", "val_loss"):
                if isinstance(r.get(key), float) and "step" in r:
                    out[(r["step"], key)] = r[key]
        return out

    ref, gpu = values(ref_metrics), values(gpu_metrics)
    missing = sorted(set(ref) - set(gpu))
    worst = {}
    for (step, key), b in ref.items():
        if (step, key) in gpu:
            worst[key] = max(worst.get(key, 0.0), rel(gpu[(step, key)], b))
    y, y_ref = np.load(gpu_y), np.load(ref_y)
    worst["logits"] = float(np.abs(y - y_ref).max() / np.abs(y_ref).max())
    steps = sum(1 for (_, key) in ref if key == "loss")
    ok = not missing and all(v <= bound for v in worst.values())
    if missing:
        print(f"{name}: the GPU run has no {missing[0][1]} at step {missing[0][0]}")
    print(f"{name}: GPU vs CPU over {steps} steps, max relative error: "
          + ", ".join(f"{k} {v:.2e}" for k, v in worst.items())
          + f" (bound {bound:g}): {'ok' if ok else 'FAILED'}")
    return 0 if ok else 1


def profile_rows(path):
    rows = []
    for line in open(path):
        m = re.match(r"\s+([0-9.]+)\s+([0-9.]+)%\s+(\d+)\s+([0-9.]+)\s+(\S+)", line)
        if m:
            rows.append((float(m[1]), int(m[3]), float(m[4]), m[5]))
    return rows


def gemm(profile, n, tile="128x128x4"):
    n = int(n)
    rows = profile_rows(profile)
    if not rows:
        print("gemm: no kernel profile (TESSERA_CUDA_PROFILE)")
        return 1
    # The product is the slowest kernel by far; the others round f32 to bf16.
    total, launches, mean_us, kernel = max(rows, key=lambda r: r[2])
    flops = 2.0 * n ** 3
    print(f"tessera bf16 {n}x{n}x{n}, wgmma tile {tile}: kernel {kernel} {mean_us / 1e3:.4f} ms mean over "
          f"{launches} launches, {flops / (mean_us * 1e-6) / 1e12:.1f} TFLOP/s "
          f"({total / sum(r[0] for r in rows) * 100:.0f}% of the forward's kernel time; "
          f"the rest is the f32->bf16 roundings)")
    return 0


def gpt2(metrics, pkg):
    records = [json.loads(line) for line in open(metrics)]
    steps = [r for r in records if "step_ms" in r]
    m = json.load(open(f"{pkg}/manifest.json"))
    params = sum(int(np.prod(p["shape"])) for p in m["parameters"])
    train = json.loads(m["train"]) if isinstance(m["train"], str) else m["train"]
    batch, seq = train["data"]["batch"], train["data"]["seq"]
    layers, dim = 12, 768
    timed = [r["step_ms"] for r in steps[5:]] or [r["step_ms"] for r in steps]
    step_s = statistics.median(timed) / 1e3
    tokens = batch * seq / step_s
    flops_per_token = 6 * params + 12 * layers * seq * dim
    name = gpu_name()
    peak = dense_bf16_peak(name)
    mfu = f"{tokens * flops_per_token / peak * 100:.1f}% of {peak / 1e12:.0f} TFLOP/s" if peak else "unknown peak"
    print(f"tessera GPT-2 124M ({params / 1e6:.1f}M parameters, B={batch}, T={seq}, bf16): "
          f"median step {step_s * 1e3:.1f} ms over steps {len(steps) - len(timed) + 1}-{len(steps)}, "
          f"{tokens:.0f} tokens/s, MFU {mfu} on {name} "
          f"(6N + 12 L T d = {flops_per_token / 1e9:.3f} GFLOP per token); "
          f"losses {steps[0]['loss']:.3f} -> {steps[-1]['loss']:.3f}")
    return 0


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    sys.exit({"set-data": lambda: set_data(*args) or 0, "compare": lambda: compare(*args),
              "gemm": lambda: gemm(*args), "gpt2": lambda: gpt2(*args)}[cmd]())
