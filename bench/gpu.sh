#!/usr/bin/env bash
# Everything Tessera measures on a GPU, in one go, on the GPU machine (CUDA
# driver, CMake, g++, python3 with numpy and PyTorch; no LLVM/MLIR): run
# bench/gpu/prepare.sh here first and carry bench/gpu/carry. From the
# repository root:
#
#   bench/gpu.sh [OUT_DIR [PHASES]]   (default /tmp/tessera-gpu, all phases)
#
# PHASES is a comma-separated subset of build,examples,gemm,gpt2, for
# splitting the run over several calls of at most 10 minutes (the runtime
# build in build-rt/ is reused when it is there). Each training or timing
# command has a time limit, so a hang costs minutes, not the whole call.
#
# 1. builds the runtime (tessera-rt) with CMake;
# 2. trains the KJV char-GPT packages (f32 and bf16) for 20 steps and runs
#    their forward, comparing losses and logits with the CPU's (bounds:
#    f32 1e-4 relative, bf16 2e-2);
# 3. times the 4096^3 bf16 GEMM: Tessera's wgmma kernel with each of its
#    tiles (--wgmma-tile), loads (--wgmma-loads=cp.async|tma) and tile
#    orders (--wgmma-group-rows; the list is bench/gpu/variants.sh; kernel
#    time from TESSERA_CUDA_PROFILE) against
#    cuBLAS (bench/gpu/cublas_gemm.cu) and PyTorch on the same GPU;
# 4. trains GPT-2 124M (d=768, 12 layers, T=1024, batch 8, bf16) for 30
#    steps, with cp.async and with TMA matmul loads, without split-K and
#    with tiles walked row by row (bench/gpu/variants.sh): tokens/s and
#    MFU, the
#    time per kernel of a profiled run, and
#    the same step in PyTorch (bench/gpu/torch_gpt2.py) for reference.
# OUT_DIR/summary.txt gets every number; the logs and profiles sit beside
# it (training checkpoints are deleted). With the device tool: carry
# bench/gpu/carry, run `bench/gpu.sh /tmp/tessera-gpu; cp /tmp/tessera-gpu/*.txt
# /tmp/tessera-gpu/*.log $OUT/`.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/tessera-gpu}
PHASES=",${2:-build,examples,gemm,gpt2},"
C=bench/gpu/carry
mkdir -p "$OUT"
S="$OUT/summary.txt"
touch "$S"
want() { [[ $PHASES == *",$1,"* ]]; }
T="timeout 300"
say() { echo "$*" | tee -a "$S"; }
failed=0
check() { if ! "$@"; then failed=1; say "FAILED: $*"; fi; }
# A check whose output also goes to the summary (a plain `check ... | tee`
# would run check in a subshell and lose the failure).
report() {
  "$@" 2>&1 | tee -a "$S"
  [ "${PIPESTATUS[0]}" = 0 ] || { failed=1; say "FAILED: $*"; }
}
. bench/gpu/variants.sh
[ -d "$C/pkgs" ] || { echo "gpu.sh: $C missing: run bench/gpu/prepare.sh where LLVM/MLIR are" >&2; exit 1; }

say "== GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader)"
say "== date: $(date -u +%Y-%m-%dT%H:%MZ), host CPUs: $(nproc)"

# 1. The runtime.
t0=$(date +%s)
if want build || [ ! -x build-rt/bin/tessera-rt ]; then
if ! { cmake -S runtime -B build-rt -G Ninja -DCMAKE_BUILD_TYPE=Release \
         -DCMAKE_PREFIX_PATH="$PWD/$C/deps" > "$OUT/build.log" 2>&1 &&
       ninja -C build-rt >> "$OUT/build.log" 2>&1; }; then
  tail -30 "$OUT/build.log"; say "FAILED: building the runtime"; exit 1
fi
say "runtime built in $(( $(date +%s) - t0 )) s"
fi
export LD_LIBRARY_PATH="$PWD/$C/deps/lib:${LD_LIBRARY_PATH:-}"
RT=build-rt/bin/tessera-rt
$RT devices | tee -a "$S"
for p in "$C"/pkgs/*.tsrpkg; do
  [ -f "$p/code.so.gz" ] && gunzip -f "$p/code.so.gz"
  [ -f "$p/weights.safetensors" ] || check $RT init-weights "$p"
done
python3 bench/gpu/report.py set-data "$C/pkgs/kjv_f32.tsrpkg" "$PWD/$C/kjv.bin"
python3 bench/gpu/report.py set-data "$C/pkgs/kjv_bf16.tsrpkg" "$PWD/$C/kjv.bin"

# 2. The examples against the CPU.
want examples && for prec in f32 bf16; do
  bound=$([ $prec = f32 ] && echo 1e-4 || echo 2e-2)
  rm -rf "$OUT/kjv_$prec"
  check $T $RT train "$C/pkgs/kjv_$prec.tsrpkg" --steps 20 --out "$OUT/kjv_$prec" -q
  check $T $RT run "$C/pkgs/kjv_$prec.tsrpkg" --input "$C/ref/kjv_x.npy" --output "$OUT/kjv_${prec}_y.npy"
  report python3 bench/gpu/report.py compare "kjv $prec" "$bound" \
    "$C/ref/kjv_${prec}_metrics.jsonl" "$OUT/kjv_$prec/metrics.jsonl" \
    "$C/ref/kjv_${prec}_y.npy" "$OUT/kjv_${prec}_y.npy"
done

# 3. GEMM 4096^3 bf16.
if want gemm; then
python3 -c "import numpy as n; n.save('$OUT/gemm_x.npy', n.random.default_rng(0).standard_normal((4096, 4096), dtype=n.float32))"
for variant in $GEMM_VARIANTS; do
  TESSERA_CUDA_PROFILE=1 $T $RT run "$C/pkgs/gemm_$variant.tsrpkg" --input "$OUT/gemm_x.npy" \
    --repeat 20 > "$OUT/gemm_run_$variant.txt" 2> "$OUT/gemm_profile_$variant.txt"
  report python3 bench/gpu/report.py gemm "$OUT/gemm_profile_$variant.txt" 4096 $variant
done
if nvcc -O3 -arch=native -o "$OUT/cublas_gemm" bench/gpu/cublas_gemm.cu -lcublas > "$OUT/nvcc.log" 2>&1; then
  report "$OUT/cublas_gemm" 4096 4096 4096
else
  say "cuBLAS baseline: nvcc failed ($(tail -1 "$OUT/nvcc.log"))"
fi
report $T python3 bench/gpu/torch_gpt2.py gemm
fi

# 4. GPT-2 124M training step.
if want gpt2; then
python3 -c "import numpy as n; n.random.default_rng(0).integers(0, 50257, 3_000_000).astype(n.uint16).tofile('$OUT/gpt2_tokens.bin')"
for pkg in gpt2 $(for v in $GPT2_VARIANTS; do echo gpt2_$v; done); do
python3 bench/gpu/report.py set-data "$C/pkgs/$pkg.tsrpkg" "$OUT/gpt2_tokens.bin"
rm -rf "$OUT/$pkg"
say "-- $pkg ($([ $pkg = gpt2 ] && echo "cp.async loads, split-K auto" || gpt2_flags ${pkg#gpt2_}))"
check $T $RT train "$C/pkgs/$pkg.tsrpkg" --steps 30 --out "$OUT/$pkg" -q
report python3 bench/gpu/report.py gpt2 "$OUT/$pkg/metrics.jsonl" "$C/pkgs/$pkg.tsrpkg"
rm -rf "$OUT/${pkg}_profiled"
TESSERA_CUDA_PROFILE=1 $T $RT train "$C/pkgs/$pkg.tsrpkg" --steps 3 --out "$OUT/${pkg}_profiled" -q \
  2> "$OUT/${pkg}_profile.txt"
head -25 "$OUT/${pkg}_profile.txt" | tee -a "$S"
done
report $T python3 bench/gpu/torch_gpt2.py train
fi
rm -rf "$OUT"/gpt2*/*.safetensors "$OUT"/kjv_*/*.safetensors
say "== done: $([ $failed = 0 ] && echo 'all checks passed' || echo 'SOME CHECKS FAILED')"
exit $failed
