#!/usr/bin/env bash
# Prepares what bench/gpu.sh needs on a GPU machine, which has CUDA, CMake
# and g++ but no LLVM/MLIR: run it here, after building, then carry
# bench/gpu/carry (git-ignored) with the working tree.
#
#   bench/gpu/prepare.sh [BUILD_DIR]
#
# It writes into bench/gpu/carry:
#   pkgs/   GPU packages for sm_90 of the KJV char-GPT in f32 and bf16, the
#           4096^3 bf16 GEMM (one per --wgmma-tile, with cp.async and
#           TMA loads, two with tiles row by row: bench/gpu/variants.sh)
#           and GPT-2 124M (each loads, without split-K, tiles row by
#           row): fatbins
#           (ptxas machine code,
#           nothing to compile at load) where the CUDA toolkit is found
#           here, else PTX. Weights files are left out (gpu.sh rewrites
#           them with `tessera-rt init-weights`, bit for bit) and code.so
#           is gzipped.
#   ref/    the CPU's results for the same char-GPT packages, compiled for
#           the CPU: 20 training steps (metrics.jsonl) and `forward` on a
#           fixed batch, to compare with the GPU's.
#   kjv.bin the first 200k characters of the KJV token file.
#   deps/   nlohmann-json and zlib headers and libz, in case the GPU
#           machine lacks them (the runtime's build looks there last).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
T=$BUILD/bin/tessera
C=bench/gpu/carry
PY=/usr/bin/python3
[ -x "$T" ] || { echo "prepare.sh: $T not found; build first" >&2; exit 1; }
. bench/gpu/variants.sh
[ -f examples/data/kjv_chars.bin ] || scripts/prepare_kjv.sh
rm -rf "$C"
mkdir -p "$C/pkgs" "$C/ref" "$C/deps/include" "$C/deps/lib" "$C/deps/share/cmake"

cp -r /usr/include/nlohmann "$C/deps/include/"
cp -r /usr/share/cmake/nlohmann_json "$C/deps/share/cmake/"
cp /usr/include/zlib.h /usr/include/zconf.h "$C/deps/include/"
cp -L /usr/lib/x86_64-linux-gnu/libz.so "$C/deps/lib/libz.so"

head -c 400000 examples/data/kjv_chars.bin > "$C/kjv.bin"
"$PY" -c "import numpy as n; n.save('$C/ref/kjv_x.npy', n.random.default_rng(0).integers(0, 73, (32, 128)).astype(n.int32))"

for prec in f32 bf16; do
  policy=$([ $prec = f32 ] && echo "f32" || echo "bf16(master=f32)")
  sed -e "s|\"data/kjv_chars.bin\"|\"$PWD/$C/kjv.bin\"|" \
      -e "s|precision = f32|precision = $policy|" \
      -e "s|checkpoint = every(500, \"runs/kjv\", keep=3)|checkpoint = every(1000, \"runs/kjv\", keep=1)|" \
      examples/kjv_gpt.tsr > "$C/kjv_$prec.tsr"
  echo "kjv $prec: CPU package, 20 steps and forward (the reference)"
  "$T" compile "$C/kjv_$prec.tsr" -e pretrain -o "/tmp/kjv_${prec}_cpu.tsrpkg"
  rm -rf "/tmp/kjv_${prec}_ref"
  "$T" train "/tmp/kjv_${prec}_cpu.tsrpkg" --steps 20 --out "/tmp/kjv_${prec}_ref" -q
  cp "/tmp/kjv_${prec}_ref/metrics.jsonl" "$C/ref/kjv_${prec}_metrics.jsonl"
  "$T" run "/tmp/kjv_${prec}_cpu.tsrpkg" --input "$C/ref/kjv_x.npy" \
      --output "$C/ref/kjv_${prec}_y.npy" > /dev/null
  echo "kjv $prec: GPU package"
  "$T" compile "$C/kjv_$prec.tsr" -e pretrain --target sm_90 -o "$C/pkgs/kjv_$prec.tsrpkg"
  rm "$C/pkgs/kjv_$prec.tsrpkg/weights.safetensors"
done

echo "gemm: GPU packages, one per wgmma tile (128x128x4 is the default),"
echo "      loading with cp.async (the default) or TMA (VARIANT-tma), tiles row"
echo "      by row (VARIANT_rows) or in groups of 8 rows (the default)"
for variant in $GEMM_VARIANTS; do
  "$T" compile bench/gpu/gemm.tsr -e gemm --target sm_90 \
      $(variant_flags $variant) -o "$C/pkgs/gemm_$variant.tsrpkg"
  rm "$C/pkgs/gemm_$variant.tsrpkg/weights.safetensors"
done

echo "GPT-2 124M: GPU packages: cp.async and TMA loads, no split-K, tiles row by row"
echo "            (a minute or two each)"
"$T" compile bench/gpu/gpt2_124m.tsr -e gpt2 --target sm_90 -o "$C/pkgs/gpt2.tsrpkg"
for variant in $GPT2_VARIANTS; do
  "$T" compile bench/gpu/gpt2_124m.tsr -e gpt2 --target sm_90 $(gpt2_flags $variant) \
      -o "$C/pkgs/gpt2_$variant.tsrpkg"
done
rm "$C"/pkgs/gpt2*.tsrpkg/weights.safetensors

# The kernels compress well (PTX text, machine code): the carried tree has
# a 64 MiB limit. gpu.sh unpacks them.
gzip -6 "$C"/pkgs/*.tsrpkg/code.so
du -sh "$C"
