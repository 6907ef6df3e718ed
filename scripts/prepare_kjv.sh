#!/usr/bin/env bash
# Writes the character-level KJV Bible token file that examples/kjv_gpt.tsr
# trains on: examples/data/kjv_chars.bin (u16 token ids, little-endian) and
# examples/data/kjv_vocab.json (id -> character). The text comes from
# Debian's bible-kjv package (`bible`), installed when missing.
#   scripts/prepare_kjv.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-examples/data}
if ! command -v bible >/dev/null; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get install -y -qq --no-install-recommends bible-kjv >/dev/null
fi
mkdir -p "$out"
if [ -f "$out/kjv_chars.bin" ] && [ -f "$out/kjv_vocab.json" ]; then
  echo "$out/kjv_chars.bin exists"
  exit 0
fi
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
bible 'Gen1:1-Rev22:21' > "$tmp" 2>/dev/null
/usr/bin/python3 - "$tmp" "$out" <<'PY'
import json, math, os, struct, sys
from collections import Counter
text = open(sys.argv[1], encoding="utf-8").read()
out = sys.argv[2]
chars = sorted(set(text))
ids = {c: i for i, c in enumerate(chars)}
data = struct.pack(f"<{len(text)}H", *(ids[c] for c in text))
for name, payload in [("kjv_chars.bin", data),
                      ("kjv_vocab.json", json.dumps(chars).encode())]:
    tmp = os.path.join(out, name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(out, name))
counts = Counter(text)
n = len(text)
entropy = -sum(c / n * math.log(c / n) for c in counts.values())
print(f"{out}/kjv_chars.bin: {n} tokens, vocabulary {len(chars)}; "
      f"unigram entropy {entropy:.4f} nats/char (the loss of predicting "
      f"character frequencies)")
PY
