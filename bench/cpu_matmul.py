"""CPU contraction throughput: Tessera's lowering (nn.linear -> linalg ->
LLVM, run by mlir-runner -O3) vs PyTorch eager, same shapes, same process
count, one thread each. Prints GFLOP/s per size.
Usage: bench/cpu_matmul.py [build-dir]   (set OPENBLAS_CORETYPE=SkylakeX for a
tuned OpenBLAS when it is the installed libblas)
"""
import os
import re
import subprocess
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import torch  # noqa: E402

torch.set_num_threads(1)
build = sys.argv[1] if len(sys.argv) > 1 else "build"
opt = os.path.join(build, "bin", "tessera-opt")
lib = "/usr/lib/llvm-22/lib"
runner = "/usr/lib/llvm-22/bin/mlir-runner"
kernels = os.path.join(build, "lib", "libtessera_cpu_kernels.so")


def tessera_seconds(m, n, k, reps, pipeline):
    t = lambda s: "tensor<" + "x".join(map(str, s)) + "xf32>"
    text = f"""
func.func private @rtclock() -> f64
func.func private @printF64(f64)
func.func private @printNewline()
func.func @lin(%x: {t([m, k])}, %w: {t([n, k])}) -> {t([m, n])} {{
  %y = nn.linear %x, %w : ({t([m, k])}, {t([n, k])}) -> {t([m, n])}
  return %y : {t([m, n])}
}}
func.func @main() {{
  %x = arith.constant dense<0.5> : {t([m, k])}
  %w = arith.constant dense<0.25> : {t([n, k])}
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %cr = arith.constant {reps} : index
  %t0 = call @rtclock() : () -> f64
  scf.for %i = %c0 to %cr step %c1 {{
    %y = func.call @lin(%x, %w) : ({t([m, k])}, {t([n, k])}) -> {t([m, n])}
    %v = tensor.extract %y[%c0, %c0] : {t([m, n])}
  }}
  %t1 = call @rtclock() : () -> f64
  %dt = arith.subf %t1, %t0 : f64
  call @printF64(%dt) : (f64) -> ()
  call @printNewline() : () -> ()
  return
}}
"""
    llvm = subprocess.run([opt, pipeline], input=text, check=True,
                          capture_output=True, text=True).stdout
    out = subprocess.run([runner, "-e", "main", "-entry-point-result=void", "-O3",
                          f"-shared-libs={lib}/libmlir_runner_utils.so,{lib}/libmlir_c_runner_utils.so,"
                          f"{kernels}"],
                         input=llvm, check=True, capture_output=True, text=True).stdout
    return float(re.findall(r"[0-9.e+-]+", out)[-1]) / reps


def torch_seconds(m, n, k, reps):
    x, w = torch.full((m, k), 0.5), torch.full((n, k), 0.25)
    torch.nn.functional.linear(x, w)
    t0 = time.perf_counter()
    for _ in range(reps):
        torch.nn.functional.linear(x, w)
    return (time.perf_counter() - t0) / reps


print(f"{'M=N=K':>6} {'loops GFLOP/s':>14} {'kernel GFLOP/s':>15} {'torch GFLOP/s':>14} "
      f"{'kernel/torch':>12}")
for s, reps in [(64, 20), (128, 5), (256, 2), (512, 4), (1024, 2)]:
    flops = 2 * s ** 3
    tl = tessera_seconds(s, s, s, 1, "--tessera-lower-to-llvm-loops") if s <= 256 else float("nan")
    tk = tessera_seconds(s, s, s, reps * 5, "--tessera-lower-to-llvm")
    tt = torch_seconds(s, s, s, max(reps * 5, 20))
    print(f"{s:>6} {flops / tl / 1e9:>14.2f} {flops / tk / 1e9:>15.2f} {flops / tt / 1e9:>14.2f} "
          f"{tt / tk:>12.3f}")
