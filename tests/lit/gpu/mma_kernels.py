"""Summarizes the tensor-core kernels of a PTX file for FileCheck.

Prints the number of kernels with mma.sync, how many of them load from global
memory (the accumulators must start in registers, not be read back), and the
number of mma.sync per kernel.

Usage: mma_kernels.py FILE.ptx
"""
import re
import sys

text = open(sys.argv[1]).read()
kernels = re.split(r"\.visible \.entry ", text)[1:]
mma = [k for k in kernels if "mma.sync" in k]
print(f"kernels: {len(kernels)}, with mma.sync: {len(mma)}, "
      f"of which load from global memory: {sum('ld.global' in k for k in mma)}")
print("mma.sync per kernel:", sorted({k.count("mma.sync.aligned") for k in mma}))
