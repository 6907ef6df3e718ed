"""Compiles a small char-GPT with `tessera compile`, lowers it to the CPU
through convert-nn-to-linalg and MLIR's pipeline, runs it with mlir-runner on
random weights and tokens, and compares the logits with an independent
PyTorch implementation of the same model (f32; the error, max |tessera - f64 reference| over max |f64 reference|, must
be <= 1e-5; torch's own f32 error is printed for scale).

Usage: gpt_vs_torch.py BIN_DIR LLVM_LIB_DIR WORK_DIR
"""
import os
import re
import subprocess
import sys

import torch

from gpt_spec import gpt_reference, gpt_spec
from mlir_harness import error, run

bin_dir, lib_dir, work = sys.argv[1:4]
os.makedirs(work, exist_ok=True)
V, C, D, H, L, B, T = 11, 8, 16, 2, 2, 2, 8

spec = gpt_spec(V, C, D, H, L, B, T)
open(os.path.join(work, "gpt.tsr"), "w").write(spec)
nn_ir = subprocess.run([os.path.join(bin_dir, "tessera"), "compile",
                        os.path.join(work, "gpt.tsr"), "-e", "t"],
                       check=True, capture_output=True, text=True).stdout

# Parameters in argument order, with their shapes, from the generated IR.
sig = nn_ir[nn_ir.index("func.func @forward("):]
sig = sig[:sig.index("{\n")]
params = re.findall(r"tensor<([0-9x]+)xf32> \{[^}]*tessera.param = \"([^\"]+)\"\}", sig)

torch.manual_seed(0)
weights = {}
for shape, path in params:
    dims = [int(d) for d in shape.split("x")]
    w = torch.randn(*dims) * 0.3
    if path.endswith("ln1.weight") or path.endswith("ln2.weight") or path == "ln_f.weight":
        w = 1.0 + 0.1 * torch.randn(*dims)
    weights[path] = w
idx = torch.randint(0, V, (B, T), dtype=torch.int32)


got = run(bin_dir, lib_dir, nn_ir, "forward",
          [idx] + [weights[path] for _, path in params], [B, T, V])


def ref(dtype):
    return gpt_reference(weights, idx, L, D, H, dtype)


# The f64 reference is the ground truth; torch's own f32 result is printed
# beside ours to show the rounding noise expected at this precision.
truth = ref(torch.float64)
torch32 = ref(torch.float32).double()
ours, theirs = error(got, truth), error(torch32, truth)
ok = ours <= 1e-5
print(f"params {len(params)}, logits {tuple(truth.shape)}: max |tessera - f64| / max |f64| = "
      f"{ours:.3g} (torch f32: {theirs:.3g}), bound 1e-05: {'ok' if ok else 'FAILED'}")
sys.exit(0 if ok else 1)
