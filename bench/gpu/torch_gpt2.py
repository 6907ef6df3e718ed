"""PyTorch references for bench/gpu.sh, on the same GPU in the same run.

  torch_gpt2.py gemm    bf16 4096^3 torch.matmul (cuBLAS), median of 20
  torch_gpt2.py train   GPT-2 124M (the model of bench/gpu/gpt2_124m.tsr:
                        d=768, 12 layers, 12 heads, T=1024, vocab 50304,
                        tied head, batch 8) trained with bf16 autocast,
                        fused AdamW and clipping; eager, with PyTorch's
                        fused attention (scaled_dot_product_attention).
                        Median step time of 20 steps after 5 warm-ups.
"""
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from report import dense_bf16_peak


def timed(fn, warmup, reps):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gemm():
    n = 4096
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    t = timed(lambda: a @ b.T, 5, 20)
    print(f"torch bf16 {n}x{n}x{n} (cuBLAS via torch.matmul): {t * 1e3:.4f} ms, "
          f"{2 * n ** 3 / t / 1e12:.1f} TFLOP/s")


class Block(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(D, dim=2)
        q, k, v = (t.view(B, T, self.h, D // self.h).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, D))
        return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, vocab=50304, ctx=1024, d=768, h=12, layers=12):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(ctx, d)
        self.blocks = nn.ModuleList(Block(d, h) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for b in self.blocks:
            x = b(x)
        return self.ln_f(x) @ self.wte.weight.T


def train():
    B, T, L, D = 8, 1024, 12, 768
    torch.manual_seed(0)
    model = GPT().cuda()
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=6e-4, betas=(0.9, 0.95),
                            weight_decay=0.1, fused=True)
    x = torch.randint(0, 50257, (B, T), device="cuda")
    y = torch.randint(0, 50257, (B, T), device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x).float().view(-1, 50304), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    t = timed(step, 5, 20)
    tokens = B * T / t
    flops_per_token = 6 * params + 12 * L * T * D
    name = torch.cuda.get_device_name()
    peak = dense_bf16_peak(name)
    mfu = f"{tokens * flops_per_token / peak * 100:.1f}%" if peak else "unknown peak"
    print(f"torch {torch.__version__} GPT-2 124M ({params / 1e6:.1f}M parameters, B={B}, T={T}, "
          f"bf16 autocast, eager): median step {t * 1e3:.1f} ms, {tokens:.0f} tokens/s, MFU {mfu}")


if __name__ == "__main__":
    {"gemm": gemm, "train": train}[sys.argv[1]]()
