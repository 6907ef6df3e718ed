"""Crash safety: a `tessera train` run killed with SIGKILL at a random moment
and continued with `--resume DIR` logs exactly the losses of an
uninterrupted run (bit-identical floats) and ends with identical weights.

Usage: resume_after_kill.py BIN_DIR WORK_DIR
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

bin_dir, work = sys.argv[1:3]
os.makedirs(work, exist_ok=True)
tessera = os.path.join(bin_dir, "tessera")
STEPS = 1500
rng = np.random.default_rng(1)
tokens = ((np.arange(20000) % 13) + (rng.random(20000) < 0.3) * rng.integers(0, 13, 20000)) % 13
tokens.astype("<u2").tofile(f"{work}/tokens.bin")
open(f"{work}/gpt.tsr", "w").write(f"""
import nn
model LM(vocab: int, dim: int) {{
  wte = Embedding(vocab, dim)
  mlp = MLP(dim, 4 * dim)
  head = Linear(dim, vocab)
  fn forward(idx: i32[B, T]) -> f32[B, T, vocab] {{
    return head(mlp(wte(idx)))
  }}
}}
data toks = tokens("tokens.bin", dtype=u16, seq=16, batch=8, val=0.1)
train t {{
  model = LM(13, 32)
  data = toks
  loss = cross_entropy(model(x), y)
  optimizer = AdamW(lr=1e-2)
  schedule = warmup_linear(warmup=20, min_lr=1e-4)
  clip = global_norm(1.0)
  steps = {STEPS}
  eval = every(100, batches=2)
  checkpoint = every(25, "unused", keep=2)
  seed = 3
}}
""")


def losses(run):
    out = {}
    for line in open(f"{run}/metrics.jsonl"):
        r = json.loads(line)
        if "loss" in r and "summary" not in r:
            out[r["step"]] = r["loss"]
    return out


def train(out, extra=()):
    return [tessera, "train", f"{work}/gpt.tsr", "-e", "t", "--out", out, "-q", *extra]


full = f"{work}/full"
shutil.rmtree(full, ignore_errors=True)
subprocess.run(train(full), check=True)

crashed = f"{work}/crashed"
random.seed()
delay = random.uniform(0.0, 0.5)
for attempt in range(4):
    shutil.rmtree(crashed, ignore_errors=True)
    proc = subprocess.Popen(train(crashed))
    deadline = time.time() + 120
    while not any(f.startswith("step-") and f.endswith(".safetensors") for f in
                  (os.listdir(crashed) if os.path.isdir(crashed) else [])):
        if proc.poll() is not None or time.time() > deadline:
            sys.exit("the run ended before its first checkpoint")
        time.sleep(0.01)
    time.sleep(delay)
    if proc.poll() is None:
        break
    delay /= 4  # a fast machine finished first: kill sooner
else:
    sys.exit("the run always ended before it could be killed")
os.kill(proc.pid, signal.SIGKILL)
proc.wait()
before = max(losses(crashed))
subprocess.run(train(crashed, ["--resume", crashed]), check=True)

a, b = losses(full), losses(crashed)
same = a == b and len(a) == STEPS
final = f"step-{STEPS:08d}.safetensors"
same_weights = open(f"{full}/{final}", "rb").read() == open(f"{crashed}/{final}", "rb").read()
print(f"killed (SIGKILL) after step {before} of {STEPS}; resumed run: {len(b)} losses, "
      f"{'identical' if same else 'DIFFERENT'} to the uninterrupted run; final checkpoint "
      f"{'identical' if same_weights else 'DIFFERENT'}")
sys.exit(0 if same and same_weights else 1)
