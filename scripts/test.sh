#!/usr/bin/env bash
# Runs every test: lit + FileCheck, GoogleTest, and a libFuzzer smoke run of
# the front end. Sets up and builds first. Ends with one summary line
# "tests: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh || { echo "tests: 0 passed, 1 failed"; exit 1; }
BUILD_DIR=${BUILD_DIR:-build}
passed=0
failed=0

echo "== lit"
lit_out=$(/usr/lib/llvm-22/bin/lit -sv "$BUILD_DIR/tests/lit" 2>&1)
lit_rc=$?
echo "$lit_out" | grep -E "^(FAIL|XPASS|UNRESOLVED|TIMEOUT):|Passed|Failed|Total|Unresolved" || true
[ $lit_rc -eq 0 ] || echo "$lit_out" | tail -80
p=$(echo "$lit_out" | sed -nE 's/^ *Passed *: *([0-9]+).*/\1/p' | tail -1)
f=$(echo "$lit_out" | sed -nE 's/^ *(Failed|Unresolved|Timed Out) *: *([0-9]+).*/\2/p' | awk '{s+=$1} END {print s+0}')
passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
if [ $lit_rc -ne 0 ] && [ "${f:-0}" = "0" ]; then failed=$((failed + 1)); fi

echo "== unit tests (GoogleTest)"
gt_out=$("$BUILD_DIR/bin/tessera-unittests" --gtest_brief=1 2>&1)
gt_rc=$?
echo "$gt_out" | tail -20
p=$(echo "$gt_out" | sed -nE 's/^\[  PASSED  \] ([0-9]+) tests?.*/\1/p')
f=$(echo "$gt_out" | sed -nE 's/^\[  FAILED  \] ([0-9]+) tests?.*/\1/p')
passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
if [ $gt_rc -ne 0 ] && [ -z "$f" ]; then failed=$((failed + 1)); fi

# fuzz_smoke BINARY SECONDS CORPUS: a libFuzzer run that counts as one test.
fuzz_smoke() {
  if "$BUILD_DIR/bin/$1" "$3" -max_total_time="$2" -max_len=8192 -timeout=10 \
       -rss_limit_mb=4096 -print_final_stats=0 >"$3.log" 2>&1; then
    tail -2 "$3.log"; passed=$((passed + 1))
  else
    tail -40 "$3.log"; echo "FAIL: $1"; failed=$((failed + 1))
  fi
  rm -rf "$3" "$3.log"
}

if [ -x "$BUILD_DIR/bin/tessera-fuzz-frontend" ]; then
  echo "== fuzz smoke (60 s of libFuzzer on parser + Sema)"
  corpus=$(mktemp -d)
  cp examples/*.tsr stdlib/*.tsr "$corpus"/
  find tests/lit/lang -name '*.tsr' -exec cp {} "$corpus"/ \; 2>/dev/null
  fuzz_smoke tessera-fuzz-frontend 60 "$corpus"
fi

if [ -x "$BUILD_DIR/bin/tessera-fuzz-runtime" ]; then
  echo "== fuzz smoke (30 s of libFuzzer on the safetensors/.npy/manifest readers)"
  corpus=$(mktemp -d)
  # Seeds: one file of each kind, prefixed with the byte that selects its reader.
  "$BUILD_DIR/bin/tessera" compile tests/lit/runtime/tiny.tsr -e t -o "$corpus/p.tsrpkg" >/dev/null 2>&1 || true
  if [ -f "$corpus/p.tsrpkg/manifest.json" ]; then
    { printf '\x00'; head -c 4096 "$corpus/p.tsrpkg/weights.safetensors"; } > "$corpus/seed0"
    { printf '\x02'; cat "$corpus/p.tsrpkg/manifest.json"; } > "$corpus/seed2"
    rm -rf "$corpus/p.tsrpkg"
  fi
  { printf '\x01\x93NUMPY\x01\x00\x46\x00'; printf "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }%*s\n" 10 ''; printf '\0\0\0\0\0\0\0\0'; } > "$corpus/seed1"
  fuzz_smoke tessera-fuzz-runtime 30 "$corpus"
fi

echo "tests: $passed passed, $failed failed"
[ $failed -eq 0 ]
