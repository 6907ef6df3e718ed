"""Checks the loss-scale records of an fp16 run's metrics.jsonl against
dynamic loss scaling's rules. Usage: check_loss_scale.py METRICS GROWTH"""
import json
import math
import sys

records = [json.loads(l) for l in open(sys.argv[1]) if '"loss_scale"' in l]
growth = int(sys.argv[2])
scale, good, skips, ok = 65536.0, 0, 0, True
for r in records:
    if r["skipped"]:
        scale, good, skips = scale / 2, 0, skips + 1
    else:
        good += 1
        if good == growth:
            scale, good = scale * 2, 0
    ok &= r["loss_scale"] == scale
ok &= skips > 0 and math.isfinite(records[-1]["loss"])
print(f"loss scale: starts 65536, doubles after {growth} good steps, {skips} overflow steps "
      f"skipped and halved, final loss finite: {'ok' if ok else 'FAILED'}")
