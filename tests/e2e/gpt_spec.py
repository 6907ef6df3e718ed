"""The char-GPT used by the e2e tests and the benchmark: .tsr source, and an
independent PyTorch implementation of the same model."""
import math

import torch
import torch.nn.functional as F


GPT_MODEL = """
import nn
model GPT(vocab: int, ctx: int, dim: int, heads: int, depth: int) {
  wte = Embedding(vocab, dim)
  wpe = Embedding(ctx, dim)
  blocks = repeat(depth) Block(dim, heads)
  ln_f = LayerNorm(dim)
  fn forward(idx: i32[B, T]) -> f32[B, T, vocab] {
    let h = wte(idx) + wpe(arange(T))
    return matmul(ln_f(blocks(h)), transpose(wte.weight))
  }
}
"""


def gpt_spec(vocab, ctx, dim, heads, depth, batch, seq):
    """A .tsr file with model GPT and a train block `t` over token batches."""
    return GPT_MODEL + f"""
data toks = tokens("unused.bin", seq={seq}, batch={batch})
train t {{
  model = GPT({vocab}, {ctx}, {dim}, {heads}, {depth})
  data = toks
  loss = cross_entropy(model(x), y)
  optimizer = AdamW(lr=1e-3)
  steps = 1
}}
"""


def gpt_reference(weights, idx, L, D, H, dtype, rnd=lambda t: t):
    """Logits of the GPT of gpt_spec (and examples/kjv_gpt.tsr) in PyTorch,
    computed in `dtype` from {parameter path: tensor}. `rnd` is applied to
    the inputs and outputs of every matrix product (mixed precision)."""
    W = {k: v.to(dtype) for k, v in weights.items()}

    def linear(x, w, b):
        return rnd(F.linear(rnd(x), rnd(w), rnd(b)))

    B, T = idx.shape
    h = F.embedding(idx.long(), W["wte.weight"]) + F.embedding(torch.arange(T), W["wpe.weight"])
    for l in range(L):
        p = f"blocks.{l}."
        a = F.layer_norm(h, (D,), W[p + "ln1.weight"], W[p + "ln1.bias"], 1e-5)
        qkv = linear(a, W[p + "attn.qkv.weight"], W[p + "attn.qkv.bias"])
        q, k, v = qkv.split(D, dim=-1)
        q, k, v = (rnd(t.reshape(B, T, H, D // H).transpose(1, 2)) for t in (q, k, v))
        s = q @ k.transpose(-1, -2) / math.sqrt(D // H)
        s = s.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
        y = rnd(s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D)
        h = h + linear(y, W[p + "attn.proj.weight"], W[p + "attn.proj.bias"])
        m = F.layer_norm(h, (D,), W[p + "ln2.weight"], W[p + "ln2.bias"], 1e-5)
        m = F.gelu(linear(m, W[p + "mlp.fc.weight"], W[p + "mlp.fc.bias"]), approximate="tanh")
        h = h + linear(m, W[p + "mlp.proj.weight"], W[p + "mlp.proj.bias"])
    h = F.layer_norm(h, (D,), W["ln_f.weight"], W["ln_f.bias"], 1e-5)
    return rnd(rnd(h) @ rnd(W["wte.weight"].T))
