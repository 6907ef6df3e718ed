# The matmul kernel variants that bench/gpu/prepare.sh compiles the 4096^3
# GEMM with and bench/gpu.sh times: TILE (tessera compile --wgmma-tile,
# cp.async loads) or TILE-LOADS (the same tile, --wgmma-loads=LOADS: tma or
# tma-persistent), either followed by _rows for blocks that walk the tiles
# of C row by row (--wgmma-group-rows=1) instead of in groups of 8 rows.
GEMM_VARIANTS="128x128x4 128x128x3 128x128x6 128x256x4 128x256x3
               128x128x4-tma 128x128x6-tma 128x256x4-tma 128x256x3-tma
               128x128x6-tma-persistent 128x256x4-tma-persistent
               128x256x4_rows 128x256x4-tma-persistent_rows"
# The GPT-2 packages besides the default (cp.async loads, split-K where
# the model plans it, tiles in groups of 8 rows): gpt2_VARIANT, VARIANT a
# --wgmma-loads value, no-split-k (--wgmma-split-k=off) or rows
# (--wgmma-group-rows=1).
GPT2_VARIANTS="tma tma-persistent no-split-k rows"

# The compile flags of a GPT-2 variant.
gpt2_flags() {
  case $1 in
    no-split-k) echo "--wgmma-split-k=off" ;;
    rows) echo "--wgmma-group-rows=1" ;;
    *) echo "--wgmma-loads=$1" ;;
  esac
}

# The compile flags of a GEMM variant.
variant_flags() {
  local v=${1%_rows} rows=
  [ "$v" != "$1" ] && rows=" --wgmma-group-rows=1"
  local tile=${v%%-*}
  echo "--wgmma-tile=$tile$([[ $v == *-* ]] && echo " --wgmma-loads=${v#*-}")$rows"
}
