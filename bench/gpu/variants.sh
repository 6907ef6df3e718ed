# The matmul kernel variants that bench/gpu/prepare.sh compiles the 4096^3
# GEMM with and bench/gpu.sh times: TILE (tessera compile --wgmma-tile,
# cp.async loads) or TILE-tma (the same tile, --wgmma-loads=tma).
GEMM_VARIANTS="128x128x4 128x128x3 128x128x6 128x256x4 128x256x3
               128x128x4-tma 128x128x6-tma 128x256x4-tma 128x256x3-tma"

# The compile flags of a variant.
variant_flags() {
  echo "--wgmma-tile=${1%-tma}$([[ $1 == *-tma ]] && echo ' --wgmma-loads=tma')"
}
