"""Summarizes the tensor-core kernels of a PTX file for FileCheck.

Kernels are named after the module and line they come from
(`train_step_kernel_12_nn_61` for stdlib/nn.tsr:61). Attention kernels are
the mma.sync kernels from the line of NN.tsr that calls `attention(`; the
others are matmuls. Matmuls: how many, how many of them load from global
memory (the accumulators must start in registers, not be read back), and
the number of mma.sync per kernel; how many tensor-core kernels let ptxas
use all 255 registers (`.minnctapersm 1`). Attention: how many kernels, and the
mma.sync and shfl.sync counts of each (sorted).

Usage: mma_kernels.py FILE.ptx NN.tsr
"""
import re
import sys

text = open(sys.argv[1]).read()
lines = open(sys.argv[2]).read().splitlines()
line = next(n for n, l in enumerate(lines, 1) if re.search(r"\battention\(", l))
kernels = re.split(r"\.visible \.entry ", text)[1:]
mma = [k for k in kernels if "mma.sync" in k]
attention = [k for k in mma if re.match(rf"\w+_kernel_\d+_nn_{line}\(", k)]
matmuls = [k for k in mma if k not in attention]
print(f"kernels: {len(kernels)}, matmuls with mma.sync: {len(matmuls)}, "
      f"of which load from global memory: {sum('ld.global' in k for k in matmuls)}")
print("mma.sync per matmul kernel:", sorted({k.count("mma.sync.aligned") for k in matmuls}))
# ptxas may otherwise cap a kernel of 128 threads at 128 registers.
print(f"tensor-core kernels with .minnctapersm 1: {sum('.minnctapersm 1' in k for k in mma)} "
      f"of {len(mma)}")
print(f"attention with mma.sync: {len(attention)}, mma.sync per kernel:",
      sorted(k.count("mma.sync.aligned") for k in attention), "shfl.sync per kernel:",
      sorted(k.count("shfl.sync") for k in attention))
