"""Runs one nn-dialect function on the CPU through Tessera's pipeline.

`run(bin_dir, lib_dir, module_text, fn, inputs, out_shape, out_dtype)` adds a
@main that passes `inputs` (torch tensors) as dense constants, lowers the
module with `tessera-opt --tessera-lower-to-llvm`, executes it with
mlir-runner and returns the result as a torch tensor. Floating results are
printed as raw bits, so no digit is lost on the way back.
"""
import math
import os
import re
import subprocess

import torch

ELEM = {torch.float32: "f32", torch.int32: "i32"}


def _dense(t):
    if t.dim() == 0:
        if not t.is_floating_point():
            return str(int(t))
        if not torch.isfinite(t):  # MLIR spells inf and NaN by their bits
            return "0x%08X" % (t.to(torch.float32).view(torch.int32).item() & 0xFFFFFFFF)
        return repr(float(t))
    return "[" + ", ".join(_dense(x) for x in t) + "]"


def tensor_type(shape, elem):
    return "tensor<" + "".join(f"{d}x" for d in shape) + elem + ">"


def run(bin_dir, lib_dir, module_text, fn, inputs, out_shape, out_dtype=torch.float32,
        pipeline="--tessera-lower-to-llvm"):
    out_ty = tensor_type(out_shape, ELEM[out_dtype])
    bits_ty = tensor_type(out_shape, "i32")
    rank = len(out_shape)
    dims = ", ".join(f"d{i}" for i in range(rank))
    ident = f"affine_map<({dims}) -> ({dims})>"
    main = ["  func.func private @printMemrefI32(tensor<*xi32>)", "  func.func @main() {"]
    args, types = [], []
    for i, t in enumerate(inputs):
        ty = tensor_type(list(t.shape), ELEM[t.dtype])
        main.append(f"    %a{i} = arith.constant dense<{_dense(t)}> : {ty}")
        args.append(f"%a{i}")
        types.append(ty)
    main.append(f"    %r = call @{fn}({', '.join(args)}) : ({', '.join(types)}) -> {out_ty}")
    if out_dtype == torch.float32:
        iters = ", ".join(['"parallel"'] * rank)
        main.append(f"    %e = tensor.empty() : {bits_ty}")
        main.append(f"    %bits = linalg.generic {{indexing_maps = [{ident}, {ident}], "
                    f"iterator_types = [{iters}]}} ins(%r : {out_ty}) outs(%e : {bits_ty}) {{\n"
                    "    ^bb0(%in: f32, %o: i32):\n"
                    "      %c = arith.bitcast %in : f32 to i32\n"
                    "      linalg.yield %c : i32\n"
                    f"    }} -> {bits_ty}")
    else:
        main.append(f"    %bits = tensor.cast %r : {out_ty} to {bits_ty}")
    main.append(f"    %u = tensor.cast %bits : {bits_ty} to tensor<*xi32>")
    main.append("    call @printMemrefI32(%u) : (tensor<*xi32>) -> ()")
    main += ["    return", "  }"]
    # A printed module may start with location aliases and end with more.
    end = module_text.rindex("\n}") if "module {" in module_text else None
    if end is None:
        text = "module {\n" + module_text + "\n" + "\n".join(main) + "\n}\n"
    else:
        text = module_text[:end] + "\n" + "\n".join(main) + module_text[end:]
    passes = [pipeline] if isinstance(pipeline, str) else list(pipeline)
    llvm_ir = subprocess.run([os.path.join(bin_dir, "tessera-opt")] + passes,
                             input=text, check=True, capture_output=True, text=True).stdout
    runner = os.path.join(os.path.dirname(lib_dir), "bin", "mlir-runner")
    out = subprocess.run([runner, "-e", "main", "-entry-point-result=void",
                          f"-shared-libs={lib_dir}/libmlir_runner_utils.so,"
                          f"{lib_dir}/libmlir_c_runner_utils.so,{kernels(bin_dir)}"],
                         input=llvm_ir, check=True, capture_output=True, text=True).stdout
    body = out[out.index("data =") + len("data ="):]
    vals = torch.tensor([int(v) for v in re.findall(r"-?\d+", body)], dtype=torch.int32)
    if out_dtype == torch.float32:
        vals = vals.view(torch.float32)
    return vals.reshape(out_shape)


def kernels(bin_dir):
    """The runtime's CPU kernel library next to the tools' build tree."""
    return os.path.join(os.path.dirname(bin_dir), "lib", "libtessera_cpu_kernels.so")


def error(got, ref64):
    """max |got - ref| / max |ref| (normwise relative error); inf where one
    side is NaN and the other is not (Python's max() would drop a NaN)."""
    got = got.double()
    diff = (got - ref64).abs()
    both_nan = torch.isnan(got) & torch.isnan(ref64)
    if (torch.isnan(diff) & ~both_nan).any():
        return math.inf
    diff = torch.where(both_nan, torch.zeros_like(diff), diff)
    scale = ref64[torch.isfinite(ref64)].abs().max().item() if torch.isfinite(ref64).any() else 1.0
    return diff.max().item() / (scale or 1.0)
