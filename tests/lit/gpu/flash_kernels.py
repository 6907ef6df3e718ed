"""Summarizes the attention kernels of a PTX file for FileCheck.

Kernels are named after the .tsr line they come from; the attention call's
line is found in stdlib/nn.tsr. Prints how many kernels come from it, how
many read rows with 128-bit loads (ld.global.v4), and the scalar f32 global
loads among those (only the per-row statistics should remain).

Usage: flash_kernels.py FILE.ptx STDLIB_DIR
"""
import os
import re
import sys

text = open(sys.argv[1]).read()
lines = open(os.path.join(sys.argv[2], "nn.tsr")).read().splitlines()
line = next(n for n, l in enumerate(lines, 1) if re.search(r"\battention\(", l))
kernels = [k for k in re.split(r"\.visible \.entry ", text)[1:]
           if re.match(rf"\w+_nn_{line}\(", k)]
rows = [k for k in kernels if "ld.global.v4" in k or "ld.global.nc.v4" in k]
print(f"attention kernels: {len(kernels)}, with 128-bit row loads: {len(rows)}")
print("scalar loads in those:", sorted(len(re.findall(r"ld\.global(\.nc)?\.(b32|f32) ", k))
                                       for k in rows))
