#!/usr/bin/env bash
# Times `tessera check` (parse + Sema) on the examples and on generated
# stress inputs; prints one line per input: wall seconds and peak RSS.
# Usage: bench/frontend.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build}/bin/tessera
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 - "$tmp" <<'PY'
import sys, random
d = sys.argv[1]
open(f"{d}/decls_4mb.tsr", "w").write("".join(f"let a{i} = {i} * 2 + 1\n" for i in range(180000)))
open(f"{d}/nest_1mb.tsr", "w").write("let a = " + "(" * 500000 + "1" + ")" * 500000)
random.seed(1)
open(f"{d}/garbage_8mb.tsr", "w").write("".join(random.choice("(){}[]abc =+-*/.,:;\"0123 \n") for _ in range(8_000_000)))
gpt = open("examples/kjv_gpt.tsr").read().replace("dim=128, heads=4, depth=4", "dim=768, heads=12, depth=48")
open(f"{d}/gpt_depth48.tsr", "w").write(gpt)
PY
cp stdlib/nn.tsr "$tmp/"
printf "%-22s %8s %10s %s\n" input seconds peak_MiB exit
for f in examples/kjv_gpt.tsr examples/fashion_mlp.tsr "$tmp"/gpt_depth48.tsr \
         "$tmp"/decls_4mb.tsr "$tmp"/nest_1mb.tsr "$tmp"/garbage_8mb.tsr; do
  rc=0
  /usr/bin/time -o "$tmp/time" -f "%e %M" "$BIN" check -q "$f" >/dev/null 2>&1 || rc=$?
  read -r secs kib < <(tail -1 "$tmp/time")
  printf "%-22s %8s %10.0f %s\n" "$(basename "$f")" "$secs" "$((kib / 1024))" "$rc"
done
