"""The char-GPT used by the e2e test and the benchmark, as .tsr source."""


def gpt_spec(vocab, ctx, dim, heads, depth, batch, seq):
    """A .tsr file with model GPT and a train block `t` over token batches."""
    return f"""
import nn
model GPT(vocab: int, ctx: int, dim: int, heads: int, depth: int) {{
  wte = Embedding(vocab, dim)
  wpe = Embedding(ctx, dim)
  blocks = repeat(depth) Block(dim, heads)
  ln_f = LayerNorm(dim)
  fn forward(idx: i32[B, T]) -> f32[B, T, vocab] {{
    let h = wte(idx) + wpe(arange(T))
    return matmul(ln_f(blocks(h)), transpose(wte.weight))
  }}
}}
data toks = tokens("unused.bin", seq={seq}, batch={batch})
train t {{
  model = GPT({vocab}, {ctx}, {dim}, {heads}, {depth})
  data = toks
  loss = cross_entropy(model(x), y)
  optimizer = AdamW(lr=1e-3)
  steps = 1
}}
"""
