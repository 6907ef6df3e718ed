# The matmul kernel variants that bench/gpu/prepare.sh compiles the 4096^3
# GEMM with and bench/gpu.sh times: TILE (tessera compile --wgmma-tile,
# cp.async loads) or TILE-LOADS (the same tile, --wgmma-loads=LOADS: tma or
# tma-persistent).
GEMM_VARIANTS="128x128x4 128x128x3 128x128x6 128x256x4 128x256x3
               128x128x4-tma 128x128x6-tma 128x256x4-tma 128x256x3-tma
               128x128x6-tma-persistent 128x256x4-tma-persistent"
# The GPT-2 packages besides the default (cp.async loads, split-K where
# the model plans it): gpt2_VARIANT, VARIANT a --wgmma-loads value or
# no-split-k (the default's loads, --wgmma-split-k=off).
GPT2_VARIANTS="tma tma-persistent no-split-k"

# The compile flags of a GPT-2 variant.
gpt2_flags() {
  if [ "$1" = no-split-k ]; then echo "--wgmma-split-k=off"
  else echo "--wgmma-loads=$1"; fi
}

# The compile flags of a variant.
variant_flags() {
  local tile=${1%%-*}
  echo "--wgmma-tile=$tile$([[ $1 == *-* ]] && echo " --wgmma-loads=${1#*-}")"
}
