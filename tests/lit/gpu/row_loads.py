"""Summarizes the kernels that one call of a .tsr file became, for FileCheck.

Kernels are named after the module and line they come from
(`train_step_kernel_12_nn_61` for stdlib/nn.tsr:61); the line is that of the
first `CALL(` in SOURCE. Prints how many kernels come from it (optionally
only those of one entry point), how many read rows with 128-bit loads
(ld.global.v4) and write them with 128-bit stores (or, when they write
halves, 64-bit ones), and the scalar f32 global loads among the former.

Usage: row_loads.py FILE.ptx SOURCE.tsr CALL [ENTRY]
"""
import os
import re
import sys

text = open(sys.argv[1]).read()
source, call = sys.argv[2], sys.argv[3]
entry = sys.argv[4] if len(sys.argv) > 4 else r"\w+"
module = os.path.splitext(os.path.basename(source))[0].replace("-", "_")
lines = open(source).read().splitlines()
line = next(n for n, l in enumerate(lines, 1) if re.search(rf"\b{call}\(", l))
kernels = [k for k in re.split(r"\.visible \.entry ", text)[1:]
           if re.match(rf"{entry}_kernel_\d+_{module}_{line}\(", k)]
rows = [k for k in kernels if "ld.global.v4" in k or "ld.global.nc.v4" in k]
stores = [k for k in rows if "st.global.v4" in k]
halves = [k for k in rows if "st.global.v2.b32" in k]
print(f"{call} kernels: {len(kernels)}, with 128-bit row loads: {len(rows)}, "
      f"and 128-bit stores: {len(stores)}, 64-bit stores: {len(halves)}")
print("scalar loads in those:", sorted(len(re.findall(r"ld\.global(\.nc)?\.(b32|f32) ", k))
                                       for k in rows))
