"""Summarizes the tensor-core kernels of a PTX file for FileCheck.

Matmul kernels (mma.sync without shuffles): how many, how many of them load
from global memory (the accumulators must start in registers, not be read
back), and the number of mma.sync per kernel. Attention kernels (mma.sync
and shfl.sync): how many, and their mma.sync and shfl.sync per kernel.

Usage: mma_kernels.py FILE.ptx
"""
import re
import sys

text = open(sys.argv[1]).read()
kernels = re.split(r"\.visible \.entry ", text)[1:]
mma = [k for k in kernels if "mma.sync" in k]
matmuls = [k for k in mma if "shfl.sync" not in k]
attention = [k for k in mma if "shfl.sync" in k]
print(f"kernels: {len(kernels)}, matmuls with mma.sync: {len(matmuls)}, "
      f"of which load from global memory: {sum('ld.global' in k for k in matmuls)}")
print("mma.sync per matmul kernel:", sorted({k.count("mma.sync.aligned") for k in matmuls}))
print(f"attention with mma.sync: {len(attention)}, mma.sync per kernel:",
      sorted({k.count("mma.sync.aligned") for k in attention}), "shfl.sync per kernel:",
      sorted({k.count("shfl.sync") for k in attention}))
