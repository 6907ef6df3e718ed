#!/usr/bin/env bash
# The main job on a bundled example. Today: check the character-level GPT
# pipeline (model, data, train and compress blocks) and show what Tessera
# understood of it. Training and compression arrive with the next issues.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
EXAMPLE=${1:-examples/kjv_gpt.tsr}
echo "== tessera check --params $EXAMPLE"
build/bin/tessera check --params "$EXAMPLE"
