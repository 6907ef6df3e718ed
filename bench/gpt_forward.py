"""GPT forward latency on the CPU: Tessera (tessera compile -> tessera-lower-to-llvm,
run by mlir-runner -O3, timed inside the module with rtclock, JIT excluded) vs
PyTorch eager on the same shapes, one thread each. Weights are constants
(values do not affect the timing). Issue 3's config: d=384, 6 layers, T=256,
batch 8, vocab 65.
Usage: bench/gpt_forward.py [build-dir] [dim layers T batch]
"""
import math
import os
import re
import subprocess
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from gpt_spec import gpt_spec  # noqa: E402

torch.set_num_threads(1)
build = sys.argv[1] if len(sys.argv) > 1 else "build"
D, L, T, B = (int(v) for v in sys.argv[2:6]) if len(sys.argv) > 5 else (384, 6, 256, 8)
V, H = 65, 6
lib = "/usr/lib/llvm-22/lib"
spec = gpt_spec(V, T, D, H, L, B, T)
os.makedirs("/tmp/tessera-bench", exist_ok=True)
open("/tmp/tessera-bench/gpt.tsr", "w").write(spec)
nn_ir = subprocess.run([os.path.join(build, "bin", "tessera"), "compile", "/tmp/tessera-bench/gpt.tsr",
                        "-e", "t"], check=True, capture_output=True, text=True).stdout
sig = nn_ir[nn_ir.index("func.func @forward("):]
sig = sig[:sig.index("{\n")]
arg_types = re.findall(r"(tensor<[0-9x]+x(?:f32|i32)>)", sig[:sig.rindex(") ->")])
out_ty = re.findall(r"-> (tensor<[0-9x]+xf32>)", sig)[-1]
main = ["  func.func private @rtclock() -> f64", "  func.func private @printF64(f64)",
        "  func.func private @printNewline()", "  func.func @main() {"]
args = []
for i, ty in enumerate(arg_types):
    val = "1" if ty.endswith("xi32>") else "0.01"
    main.append(f"    %a{i} = arith.constant dense<{val}> : {ty}")
    args.append(f"%a{i}")
main.append(f"    %r0 = call @forward({', '.join(args)}) : ({', '.join(arg_types)}) -> {out_ty}")
main.append("    %c0 = arith.constant 0 : index")
main.append(f"    %v0 = tensor.extract %r0[%c0, %c0, %c0] : {out_ty}")
main.append("    %t0 = call @rtclock() : () -> f64")
main.append(f"    %r = call @forward({', '.join(args)}) : ({', '.join(arg_types)}) -> {out_ty}")
main.append(f"    %v1 = tensor.extract %r[%c0, %c0, %c0] : {out_ty}")
main.append("    %t1 = call @rtclock() : () -> f64")
main.append("    %dt = arith.subf %t1, %t0 : f64")
main += ["    call @printF64(%dt) : (f64) -> ()", "    call @printNewline() : () -> ()", "    return", "  }"]
end = nn_ir.rindex("\n}")
text = nn_ir[:end] + "\n" + "\n".join(main) + nn_ir[end:]
open("/tmp/tessera-bench/gpt.mlir", "w").write(text)
llvm = subprocess.run([os.path.join(build, "bin", "tessera-opt"), "--tessera-lower-to-llvm"],
                      input=text, check=True, capture_output=True, text=True).stdout
kern = os.path.join(build, "lib", "libtessera_cpu_kernels.so")
out = subprocess.run(["/usr/lib/llvm-22/bin/mlir-runner", "-e", "main", "-entry-point-result=void", "-O3",
                      f"-shared-libs={lib}/libmlir_runner_utils.so,{lib}/libmlir_c_runner_utils.so,{kern}"],
                     input=llvm, check=True, capture_output=True, text=True).stdout
tessera_s = float(re.findall(r"[0-9.e+-]+", out)[-1])


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
    t0 = time.perf_counter()
    torch_forward(idx, W)
    torch_s = time.perf_counter() - t0
params = sum(math.prod(int(d) for d in t[len("tensor<"):].split("x")[:-1]) for t in arg_types[1:])
print(f"GPT d={D} L={L} T={T} B={B} ({params / 1e6:.2f}M params): tessera {tessera_s * 1e3:.0f} ms, "
      f"torch {torch_s * 1e3:.0f} ms, tessera/torch time ratio {tessera_s / torch_s:.2f}")
