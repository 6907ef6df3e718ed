"""Training trajectory: `tessera train` on a small char-GPT against a PyTorch
implementation of the same run: same initial weights (read from the
package's weights.safetensors), same batches (the runtime's counter-based
sampler, reimplemented here), same AdamW (torch.optim.AdamW, per-group
weight decay from the manifest), warmup+cosine schedule, global-norm
clipping and gradient accumulation.
Checks: every logged loss within 1e-4 relative; final weights within 1e-4
(max |tessera - torch| / max |torch| per tensor). One slice is reported
apart: the key bias (the middle third of each attn.qkv.bias). Its true
gradient is zero (softmax is invariant to adding q.b_k to every score of a
row), so both implementations get rounding noise there, which AdamW
normalizes into steps of up to lr; its difference measures noise, not
correctness.

With --bf16 the train block says `precision = bf16(master=f32)` and the
reference applies the same policy: inputs and outputs of every matrix
product rounded to bf16 (their gradients too), everything else f32, f32
master weights and AdamW state. Bound: 2e-2 (bf16 rounding boundaries
amplify f32 noise).

Usage: train_vs_torch.py BIN_DIR WORK_DIR [--bf16]
"""
import json
import math
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

from gpt_spec import GPT_MODEL, gpt_reference
from st_io import read_safetensors

bin_dir, work = sys.argv[1:3]
BF16 = "--bf16" in sys.argv[3:]
BOUND = 2e-2 if BF16 else 1e-4
os.makedirs(work, exist_ok=True)
V, T, D, H, L, B, ACC, STEPS, SEED = 11, 8, 16, 2, 2, 4, 2, 50, 7
LR, MIN_LR, WARMUP, WD, BETAS, EPS, CLIP = 3e-3, 1e-4, 5, 0.1, (0.9, 0.95), 1e-8, 0.5

rng = np.random.default_rng(0)
# A token stream with structure (a noisy cycle), so the model learns.
tokens = ((np.arange(5000) % V) + (rng.random(5000) < 0.2) * rng.integers(0, V, 5000)) % V
tokens.astype("<u2").tofile(f"{work}/tokens.bin")
open(f"{work}/gpt.tsr", "w").write(GPT_MODEL + f"""
data toks = tokens("tokens.bin", dtype=u16, seq={T}, batch={B}, val=0.1)
train t {{
  model = GPT({V}, {T}, {D}, {H}, {L})
  data = toks
  loss = cross_entropy(model(x), y)
  optimizer = AdamW(lr={LR}, betas={BETAS}, eps={EPS}, weight_decay={WD},
                    no_decay=["**.bias", "**.ln1.weight", "**.ln2.weight", "ln_f.weight"])
  schedule = warmup_cosine(warmup={WARMUP}, min_lr={MIN_LR})
  clip = global_norm({CLIP})
  accumulate = {ACC}
  steps = {STEPS}
  eval = every(25, batches=2)
  seed = {SEED}
  {"precision = bf16(master=f32)" if BF16 else ""}
}}
""")
run = f"{work}/run"
subprocess.run([os.path.join(bin_dir, "tessera"), "train", f"{work}/gpt.tsr", "-e", "t",
                "--out", run, "-q"], check=True)
manifest = json.load(open(f"{run}/model.tsrpkg/manifest.json"))
W0 = read_safetensors(f"{run}/model.tsrpkg/weights.safetensors")
got_losses = [json.loads(l)["loss"] for l in open(f"{run}/metrics.jsonl") if '"loss"' in l
              and '"val_loss"' not in l and '"summary"' not in l]
final = read_safetensors(f"{run}/step-{STEPS:08d}.safetensors")


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


n = len(tokens)
train_size = n - int(n * 0.1)


def batch(step, micro):
    xs, ys = [], []
    for b in range(B):
        g = ((step - 1) * ACC + micro) * B + b
        start = splitmix64(splitmix64(SEED) ^ g) % (train_size - T)
        xs.append(tokens[start:start + T])
        ys.append(tokens[start + 1:start + T + 1])
    return torch.tensor(np.array(xs), dtype=torch.int32), torch.tensor(np.array(ys), dtype=torch.long)


def lr_at(step):
    s = step - 1
    if s < WARMUP:
        return LR * (s + 1) / WARMUP
    p = min(max((s - WARMUP) / (STEPS - WARMUP), 0.0), 1.0)
    return MIN_LR + 0.5 * (LR - MIN_LR) * (1 + math.cos(math.pi * p))


class RoundBF16(torch.autograd.Function):
    """Rounds to bf16 and back; the gradient is rounded the same way."""

    @staticmethod
    def forward(ctx, x):
        return x.to(torch.bfloat16).to(torch.float32)

    @staticmethod
    def backward(ctx, g):
        return g.to(torch.bfloat16).to(torch.float32)


rnd = RoundBF16.apply if BF16 else (lambda t: t)
W = {k: v.clone().requires_grad_() for k, v in W0.items()}
decay = {p["name"]: p["weight_decay"] for p in manifest["parameters"]}
opt = torch.optim.AdamW([{"params": [W[k] for k in W if decay[k]], "weight_decay": WD},
                         {"params": [W[k] for k in W if not decay[k]], "weight_decay": 0.0}],
                        lr=LR, betas=BETAS, eps=EPS, foreach=False)
ref_losses = []
for step in range(1, STEPS + 1):
    opt.zero_grad()
    total = 0.0
    for micro in range(ACC):
        x, y = batch(step, micro)
        loss = F.cross_entropy(gpt_reference(W, x, L, D, H, torch.float32, rnd).reshape(-1, V), y.reshape(-1))
        (loss / ACC).backward()
        total += loss.item()
    ref_losses.append(total / ACC)
    torch.nn.utils.clip_grad_norm_(list(W.values()), CLIP)
    for g in opt.param_groups:
        g["lr"] = lr_at(step)
    opt.step()

assert len(got_losses) == STEPS, f"{len(got_losses)} losses logged"
loss_err = max(abs(a - b) / abs(b) for a, b in zip(got_losses, ref_losses))
def weight_error(k):
    d = (final[k] - W[k].detach()).abs()
    if k.endswith("attn.qkv.bias"):
        d = torch.cat([d[:D], d[2 * D:]])
    return d.max().item() / W[k].detach().abs().max().item()


w_err = max(weight_error(k) for k in W)
key_bias = max((final[k] - W[k].detach())[D:2 * D].abs().max().item()
               for k in W if k.endswith("attn.qkv.bias"))
ok = loss_err <= BOUND and w_err <= BOUND
print(f"{'bf16 ' if BF16 else ''}{STEPS} steps (accumulate {ACC}, clip {CLIP}, warmup_cosine): losses {got_losses[0]:.4f} -> "
      f"{got_losses[-1]:.4f} (torch {ref_losses[0]:.4f} -> {ref_losses[-1]:.4f}); "
      f"max loss error {loss_err:.2g}, max final-weight error {w_err:.2g}, bound {BOUND:g}: "
      f"{'ok' if ok else 'FAILED'} (key bias, zero true gradient: max difference {key_bias:.2g})")
sys.exit(0 if ok else 1)
