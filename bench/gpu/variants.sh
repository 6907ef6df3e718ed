# The matmul kernel variants that bench/gpu/prepare.sh compiles the 4096^3
# GEMM with and bench/gpu.sh times: TILE (tessera compile --wgmma-tile,
# cp.async loads) or TILE-LOADS (the same tile, --wgmma-loads=LOADS: tma or
# tma-persistent).
GEMM_VARIANTS="128x128x4 128x128x3 128x128x6 128x256x4 128x256x3
               128x128x4-tma 128x128x6-tma 128x256x4-tma 128x256x3-tma
               128x128x6-tma-persistent 128x256x4-tma-persistent"
# The GPT-2 packages' loads besides the default (cp.async): gpt2_LOADS.
GPT2_LOADS="tma tma-persistent"

# The compile flags of a variant.
variant_flags() {
  local tile=${1%%-*}
  echo "--wgmma-tile=$tile$([[ $1 == *-* ]] && echo " --wgmma-loads=${1#*-}")"
}
