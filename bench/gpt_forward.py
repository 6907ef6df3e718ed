"""GPT forward latency on the CPU: Tessera (a package from `tessera compile -o
X.tsrpkg`, timed by `tessera run --repeat`: median of 5 calls of the compiled
entry point after one warm-up; loading and .npy I/O excluded) vs PyTorch eager
on the same shapes (median of 5 after a warm-up), one thread each. Weights do
not affect the timing. Issue 3's config: d=384, 6 layers, T=256, batch 8,
vocab 65.
Usage: bench/gpt_forward.py [build-dir] [dim layers T batch]
"""
import math
import os
import re
import statistics
import subprocess
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from gpt_spec import gpt_spec  # noqa: E402

torch.set_num_threads(1)
build = sys.argv[1] if len(sys.argv) > 1 else "build"
D, L, T, B = (int(v) for v in sys.argv[2:6]) if len(sys.argv) > 5 else (384, 6, 256, 8)
V, H = 65, 6
work = "/tmp/tessera-bench"
os.makedirs(work, exist_ok=True)
open(f"{work}/gpt.tsr", "w").write(gpt_spec(V, T, D, H, L, B, T))
tessera = os.path.join(build, "bin", "tessera")
subprocess.run([tessera, "compile", f"{work}/gpt.tsr", "-e", "t", "-o", f"{work}/gpt.tsrpkg"], check=True)
np.save(f"{work}/idx.npy", np.ones((B, T), np.int32))
out = subprocess.run([tessera, "run", f"{work}/gpt.tsrpkg", "--input", f"{work}/idx.npy",
                      "--output", f"{work}/logits.npy", "--repeat", "5"],
                     check=True, capture_output=True, text=True).stdout
tessera_s = float(re.search(r"median ([0-9.]+) ms", out).group(1)) / 1e3


def torch_forward(idx, W):
    h = F.embedding(idx, W["wte"]) + F.embedding(torch.arange(T), W["wpe"])
    for l in range(L):
        a = F.layer_norm(h, (D,), W["g"], W["b"], 1e-5)
        q, k, v = F.linear(a, W["qkv"], W["qkvb"]).split(D, dim=-1)
        q, k, v = (t.reshape(B, T, H, D // H).transpose(1, 2) for t in (q, k, v))
        s = (q @ k.transpose(-1, -2) / math.sqrt(D // H)).masked_fill(W["mask"], float("-inf"))
        h = h + F.linear((s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D), W["proj"], W["b"])
        m = F.gelu(F.linear(F.layer_norm(h, (D,), W["g"], W["b"], 1e-5), W["fc"], W["fcb"]),
                   approximate="tanh")
        h = h + F.linear(m, W["mproj"], W["b"])
    return F.layer_norm(h, (D,), W["g"], W["b"], 1e-5) @ W["wte"].T


W = {"wte": torch.full((V, D), 0.01), "wpe": torch.full((T, D), 0.01), "g": torch.ones(D),
     "b": torch.zeros(D), "qkv": torch.full((3 * D, D), 0.01), "qkvb": torch.zeros(3 * D),
     "proj": torch.full((D, D), 0.01), "fc": torch.full((4 * D, D), 0.01), "fcb": torch.zeros(4 * D),
     "mproj": torch.full((D, 4 * D), 0.01), "mask": torch.triu(torch.ones(T, T, dtype=torch.bool), 1)}
idx = torch.ones(B, T, dtype=torch.long)
with torch.no_grad():
    torch_forward(idx, W)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        torch_forward(idx, W)
        times.append(time.perf_counter() - t0)
    torch_s = statistics.median(times)
params = V * D + T * D + L * (12 * D * D + 13 * D) + 2 * D
print(f"GPT d={D} L={L} T={T} B={B} ({params / 1e6:.2f}M params): tessera {tessera_s * 1e3:.0f} ms, "
      f"torch {torch_s * 1e3:.0f} ms, tessera/torch time ratio {tessera_s / torch_s:.2f}")
