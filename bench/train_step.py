"""Training-step throughput of the char-GPT (examples/kjv_gpt.tsr's config:
d=128, 4 layers, 4 heads, T=128, batch 32, vocab 80) on the CPU: Tessera
(`tessera train`, median step time over steps 3..N from metrics.jsonl) vs
the same model, AdamW and clipping in PyTorch eager (median of N steps
after 2 warm-up steps), one thread each, same run. Also the peak resident
memory of each (ru_maxrss of a child process that does only the training).

Usage: bench/train_step.py [build-dir] [steps]
Needs examples/data/kjv_chars.bin (scripts/prepare_kjv.sh).
"""
import json
import os
import statistics
import subprocess
import sys

build = sys.argv[1] if len(sys.argv) > 1 else "build"
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 12
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
out = "/tmp/tessera-bench/train"
os.makedirs("/tmp/tessera-bench", exist_ok=True)
subprocess.run(["rm", "-rf", out])


WRAP = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, "
        "text=True); sys.stderr.write(r.stderr); r.check_returncode(); print(r.stdout.strip()); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def run_measured(args):
    """Runs `args` in a fresh wrapper process: (its stdout, its peak RSS in KiB)."""
    out = subprocess.run(["/usr/bin/python3", "-c", WRAP, *args], check=True, env=env,
                         capture_output=True, text=True).stdout.strip().splitlines()
    return out[:-1], int(out[-1])


_, tessera_rss = run_measured([os.path.join(build, "bin", "tessera"), "train",
                               os.path.join(root, "examples", "kjv_gpt.tsr"), "-e", "pretrain",
                               "--steps", str(steps), "--out", out, "-q"])
ms = [json.loads(l)["step_ms"] for l in open(f"{out}/metrics.jsonl") if '"step_ms"' in l][2:]
tessera_ms = statistics.median(ms)

torch_code = r'''
import math, statistics, sys, time
import numpy as np, torch, torch.nn.functional as F
sys.path.insert(0, sys.argv[1])
from gpt_spec import gpt_reference
torch.set_num_threads(1)
V, T, D, H, L, B, steps = 80, 128, 128, 4, 4, 32, int(sys.argv[2])
g = torch.Generator().manual_seed(0)
W = {"wte.weight": torch.randn(V, D) * .02, "wpe.weight": torch.randn(T, D) * .02,
     "ln_f.weight": torch.ones(D), "ln_f.bias": torch.zeros(D)}
for l in range(L):
    p = f"blocks.{l}."
    W.update({p + "ln1.weight": torch.ones(D), p + "ln1.bias": torch.zeros(D),
              p + "ln2.weight": torch.ones(D), p + "ln2.bias": torch.zeros(D),
              p + "attn.qkv.weight": torch.randn(3 * D, D) * .02, p + "attn.qkv.bias": torch.zeros(3 * D),
              p + "attn.proj.weight": torch.randn(D, D) * .02, p + "attn.proj.bias": torch.zeros(D),
              p + "mlp.fc.weight": torch.randn(4 * D, D) * .02, p + "mlp.fc.bias": torch.zeros(4 * D),
              p + "mlp.proj.weight": torch.randn(D, 4 * D) * .02, p + "mlp.proj.bias": torch.zeros(D)})
W = {k: v.requires_grad_() for k, v in W.items()}
opt = torch.optim.AdamW(W.values(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
tok = np.fromfile(sys.argv[3], dtype="<u2")
times = []
for s in range(steps + 2):
    i = np.random.randint(0, len(tok) - T - 1, B)
    x = torch.tensor(np.stack([tok[j:j + T] for j in i]).astype("int32"))
    y = torch.tensor(np.stack([tok[j + 1:j + T + 1] for j in i]).astype("int64"))
    t0 = time.perf_counter()
    opt.zero_grad()
    loss = F.cross_entropy(gpt_reference(W, x, L, D, H, torch.float32).reshape(-1, V), y.reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(W.values(), 1.0)
    opt.step()
    times.append(time.perf_counter() - t0)
print(statistics.median(times[2:]) * 1e3)
'''
open("/tmp/tessera-bench/torch_train.py", "w").write(torch_code)
lines, torch_rss = run_measured(
    ["/usr/bin/python3", "/tmp/tessera-bench/torch_train.py", os.path.join(root, "tests", "e2e"),
     str(steps), os.path.join(root, "examples", "data", "kjv_chars.bin")])
torch_ms = float(lines[-1])
tokens = 32 * 128
print(f"char-GPT train step (B=32, T=128, d=128, L=4): tessera {tessera_ms:.0f} ms "
      f"({tokens / tessera_ms * 1e3:.0f} tokens/s, peak RSS {tessera_rss / 1024:.0f} MiB), "
      f"torch {torch_ms:.0f} ms ({tokens / torch_ms * 1e3:.0f} tokens/s, peak RSS "
      f"{torch_rss / 1024:.0f} MiB), tessera/torch time ratio {tessera_ms / torch_ms:.2f}")
