"""An independent reader/writer of safetensors and a runner of `tessera run`,
for tests that check Tessera's packages against PyTorch."""
import json
import os
import struct
import subprocess

import numpy as np
import torch

_DTYPES = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "I64": np.int64,
           "F16": np.float16, "U8": np.uint8, "I8": np.int8, "U16": np.uint16}


def read_safetensors(path):
    """{name: torch tensor} from a safetensors file (spec-level parsing)."""
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        arr = np.frombuffer(body[b:e], dtype=_DTYPES[info["dtype"]]).reshape(info["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out


def write_safetensors(path, tensors):
    """Writes {name: torch tensor} (f32) in the reference layout."""
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        b = t.detach().contiguous().numpy().astype(np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def tessera_run(bin_dir, pkg, inputs, work, extra=()):
    """Runs `tessera run PKG` on {name: tensor} and returns the output."""
    args = [os.path.join(bin_dir, "tessera"), "run", pkg]
    for name, t in inputs.items():
        path = os.path.join(work, f"in_{name}.npy")
        np.save(path, t.numpy())
        args += ["--input", f"{name}={path}"]
    out = os.path.join(work, "out.npy")
    subprocess.run(args + ["--output", out] + list(extra), check=True)
    return torch.from_numpy(np.load(out))


def compile_package(bin_dir, tsr, train, pkg, extra=()):
    subprocess.run([os.path.join(bin_dir, "tessera"), "compile", tsr, "-e", train,
                    "-o", pkg] + list(extra), check=True)
    return json.load(open(os.path.join(pkg, "manifest.json")))
