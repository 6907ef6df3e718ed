"""Writes good and broken inputs for run-errors.test into DIR, from the
package PKG: .npy files, weights files and a manifest with one fault each."""
import json
import os
import shutil
import struct
import sys

import numpy as np

pkg, out = sys.argv[1:3]
os.makedirs(out, exist_ok=True)
np.save(f"{out}/x.npy", np.zeros((4, 6), np.float32))
np.save(f"{out}/x_f64.npy", np.ones((4, 6)))
np.save(f"{out}/x_shape.npy", np.zeros((3, 6), np.float32))
np.save(f"{out}/x_int.npy", np.zeros((4, 6), np.int64))
np.save(f"{out}/x_fortran.npy", np.asfortranarray(np.zeros((4, 6), np.float32)))
good = open(f"{out}/x.npy", "rb").read()
open(f"{out}/x_trunc.npy", "wb").write(good[:-5])
open(f"{out}/x_garbage.npy", "wb").write(b"hello world, not numpy")

w = open(f"{pkg}/weights.safetensors", "rb").read()
(n,) = struct.unpack("<Q", w[:8])
header = json.loads(w[8:8 + n])
open(f"{out}/w_trunc.safetensors", "wb").write(w[:len(w) - 7])
open(f"{out}/w_hugeheader.safetensors", "wb").write(struct.pack("<Q", 1 << 40) + w[8:])
open(f"{out}/w_badjson.safetensors", "wb").write(w[:8] + b"{" + b"x" * (n - 1) + w[8 + n:])


def rewrite(name, edit):
    h = json.loads(json.dumps(header))
    edit(h)
    text = json.dumps(h).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    open(f"{out}/{name}", "wb").write(struct.pack("<Q", len(text)) + text + w[8 + n:])


first = sorted(k for k in header if k != "__metadata__")[0]
rewrite("w_shape.safetensors", lambda h: h[first].update(shape=[h[first]["shape"][0] + 1] + h[first]["shape"][1:]))
rewrite("w_offsets.safetensors", lambda h: h[first].update(data_offsets=[0, 1 << 40]))
rewrite("w_dtype.safetensors", lambda h: h[first].update(dtype="Q7"))
rewrite("w_missing.safetensors", lambda h: h.pop(first) and None)

for name, edit in [("pkg_version", lambda m: m.update(format_version=99)),
                   ("pkg_code", lambda m: m.update(code="../evil.so"))]:
    dst = f"{out}/{name}.tsrpkg"
    shutil.copytree(pkg, dst, dirs_exist_ok=True)
    m = json.load(open(f"{dst}/manifest.json"))
    edit(m)
    json.dump(m, open(f"{dst}/manifest.json", "w"))
