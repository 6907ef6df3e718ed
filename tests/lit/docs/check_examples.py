"""Checks every ```tsr example in a markdown file with `tessera check`.

An example containing `// error: MSG` lines (or preceded by a
`<!-- check: error "MSG" -->` marker) must fail with each MSG; any other
example must pass. Examples starting with `// file: NAME` are written under
that name so they can import each other.
Usage: check_examples.py TESSERA DOC.md WORKDIR
"""
import os
import re
import shutil
import subprocess
import sys

tessera, doc, work = sys.argv[1:4]
md = open(doc, encoding="utf-8").read()
blocks = re.findall(r'(?:<!-- check: error "([^"]*)" -->\n)?```tsr\n(.*?)```', md, re.S)
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
files = []
for i, (marker, body) in enumerate(blocks):
    m = re.match(r"// file: (\S+)", body.split("\n", 1)[0])
    path = os.path.join(work, m.group(1) if m else f"ex{i:02d}.tsr")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "w", encoding="utf-8").write(body)
    files.append((path, body, marker))
bad = 0
for path, body, marker in files:
    r = subprocess.run([tessera, "check", "--no-color", path], capture_output=True, text=True)
    out = r.stdout + r.stderr
    errs = re.findall(r"// error: (.*)", body) + ([marker] if marker else [])
    if errs:
        ok = r.returncode == 1 and all(("error: " + e.strip()) in out for e in errs)
    else:
        ok = r.returncode == 0 and "error" not in out
    if not ok:
        bad += 1
        print(f"BAD {os.path.relpath(path, work)}\n{out}")
print(f"doc examples: {len(files)} checked, {bad} bad")
sys.exit(1 if bad or not files else 0)
