"""Bytes of device buffers each kernel of a GPU package touches: a static
count from the IR, not a timing. Each buffer a kernel loads from counts
as read once in full, each it stores to as written once (shared memory
excluded), so this is a lower bound of the traffic, and the matmuls'
re-reads of their operands (from L2) are not in it. It says which kernels
move the bytes of a step, before a GPU times them.

Usage: traffic.py BIN_DIR SPEC.tsr TRAIN [ENTRY]   (ENTRY: train_step)
Compiles TRAIN's nn IR, runs the sm_90 pipeline up to host legalization
(the passes of gpuKernelPasses in compiler/Pipelines/Pipelines.cpp, with
wgmma; keep the two in step), and prints totals per kernel kind, the 40
largest kernels and the totals per buffer signature.
"""
import collections
import os
import re
import subprocess
import sys
import tempfile

PIPELINE = ("convert-nn-to-linalg{flash-attention row-kernels mma-attention warp-rows},convert-optim-to-linalg,tessera-gpu-select-tensor-cores{ragged-shapes},convert-precision-to-linalg,canonicalize,func.func(tessera-fuse-elementwise),canonicalize,func.func(tessera-narrow-storage),func.func(tessera-fuse-elementwise),canonicalize,func.func(tessera-split-reductions),one-shot-bufferize{bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map},buffer-results-to-out-params{modify-public-functions hoist-static-allocs},ownership-based-buffer-deallocation,canonicalize,buffer-deallocation-simplification,bufferization-lower-deallocations,tessera-gpu-tensor-core-matmuls{wgmma},func.func(scf-forall-to-parallel,tessera-gpu-copies-to-linalg,tessera-gpu-parallel-dims-outermost,convert-linalg-to-parallel-loops,canonicalize,tessera-gpu-interchange-row-loops,tessera-promote-accumulators,tessera-gpu-tile-parallel-loops,gpu-map-parallel-loops,convert-parallel-loops-to-gpu),tessera-gpu-legalize-host")

bin_dir, spec, train = sys.argv[1:4]
sel = sys.argv[4] if len(sys.argv) > 4 else "train_step"
with tempfile.TemporaryDirectory() as tmp:
    nn = os.path.join(tmp, "nn.mlir")
    host = os.path.join(tmp, "host.mlir")
    subprocess.run([os.path.join(bin_dir, "tessera"), "compile", spec, "-e", train,
                    "--emit=nn", "--grad", "-o", nn], check=True)
    subprocess.run([os.path.join(bin_dir, "tessera-opt"), nn,
                    f"--pass-pipeline=builtin.module({PIPELINE})", "-o", host], check=True)
    text = open(host).read().split("\n")
func = None
launches = []
i = 0
ELEM = {'f32':4,'f16':2,'bf16':2,'i32':4,'i64':8,'f64':8,'i8':1,'i1':1,'index':8}
def nbytes(t):
    m = re.match(r'memref<([^>]*)>', t)
    parts = m.group(1).split(',')[0].split('x')
    n = 1
    for p in parts[:-1]:
        n *= int(p) if p.isdigit() else 1
    return n * ELEM.get(parts[-1].strip(), 4)
while i < len(text):
    line = text[i]
    m = re.match(r'\s*func.func @(\w+)', line)
    if m: func = m.group(1)
    if re.match(r'\s{4}(%\w+ = )?gpu.launch', line):
        depth = 0; body = []
        while True:
            l = text[i]; body.append(l)
            depth += l.count('{') - l.count('}')
            i += 1
            if depth == 0 and len(body) > 1: break
        launches.append((func, body))
        continue
    i += 1
tot = collections.Counter()
rows = []
details = []
for func, body in launches:
    joined = '\n'.join(body)
    kind = 'elementwise'
    if 'nvvm.wgmma' in joined: kind = 'matmul'
    m = re.search(r'tessera.warp_rows = \{kind = "(\w+)"', joined)
    if m: kind = m.group(1)
    if 'mma_attention' in joined or 'nvvm.mma.sync' in joined or 'nvgpu.mma.sync' in joined:
        if kind == 'elementwise': kind = 'attention'
    if kind == 'elementwise' and 'gpu.shuffle' in joined: kind = 'row (warp)'
    reads, writes = {}, {}
    for l in body:
        names = re.findall(r'(%[\w]+)\[', l)
        if ':' not in l: continue
        types = re.findall(r'memref<[^>]*>', l.split(' : ',1)[-1]) if ' : ' in l else []
        store = re.search(r'(vector|memref)\.store', l)
        for j,(n,t) in enumerate(zip(names, types)):
            if 'workgroup' in t or ', 3>' in t: continue
            if 'device_async_copy' in l and j == 1: continue
            if store: writes[n] = nbytes(t)
            else: reads[n] = nbytes(t)
    r = sum(reads.values()); w = sum(writes.values())
    rows.append((func, kind, r, w))
    details.append((func, kind, r, w, sorted(set(t for t in re.findall(r'memref<[^>]*>', joined) if 'workgroup' not in t and ', 3>' not in t)), 'shfl' in joined))
for func in ['forward','train_step','optimizer_step']:
    sub = [x for x in rows if x[0]==func]
    by = collections.defaultdict(lambda:[0,0,0])
    for f,k,r,w in sub:
        by[k][0]+=1; by[k][1]+=r; by[k][2]+=w
    total = sum(v[1]+v[2] for v in by.values())
    print(f'{func}: {len(sub)} launches, {total/1e9:.2f} GB touched')
    for k,v in sorted(by.items(), key=lambda kv: -(kv[1][1]+kv[1][2])):
        print(f'   {k:28s} {v[0]:4d} launches  read {v[1]/1e9:6.2f} GB  write {v[2]/1e9:6.2f} GB')

d=[x for x in details if x[0]==sel]
for f,k,r,w,ts,sh in sorted(d, key=lambda x:-(x[2]+x[3]))[:40]:
    print(f'{(r+w)/1e9:6.3f} GB {k:10s} {"warp" if sh else "    "} ' + ' '.join(t.replace('memref<','<') for t in ts)[:200])
print('--- aggregated by signature')
agg = collections.defaultdict(lambda:[0,0.0])
for f,k,r,w,ts,sh in d:
    key = k + ('/warp' if sh else '') + ' ' + ' '.join(t.replace('memref<','<') for t in ts)[:150]
    agg[key][0]+=1; agg[key][1]+=r+w
for key,v in sorted(agg.items(), key=lambda kv:-kv[1][1])[:45]:
    print(f'{v[1]/1e9:7.2f} GB {v[0]:4d}x {key}')
