#!/usr/bin/env bash
# The main job: train the Fashion-MNIST classifier of examples/fashion_mlp.tsr
# end to end (Debian's dataset-fashion-mnist package is the data), then run
# the trained package on test images.
#   scripts/demo.sh            # about 30 s of training on 2 cores
#   scripts/demo.sh kjv        # the character-level GPT on the KJV Bible
#                              # (prepares the data; 300 steps, ~10 min)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ "${1:-}" = "kjv" ]; then
  scripts/prepare_kjv.sh
  echo "== tessera train examples/kjv_gpt.tsr -e pretrain --steps 300"
  build/bin/tessera train examples/kjv_gpt.tsr -e pretrain --steps 300 --out runs/kjv-demo
  exit 0
fi
echo "== tessera check --params examples/fashion_mlp.tsr"
build/bin/tessera check --params examples/fashion_mlp.tsr
echo "== tessera train examples/fashion_mlp.tsr -e fit"
build/bin/tessera train examples/fashion_mlp.tsr -e fit --out runs/fashion
echo "== tessera run on the first 128 test images, with the trained weights"
/usr/bin/python3 - <<'PY'
import gzip, numpy as np
root = "/usr/share/datasets/fashion-mnist/"
x = np.frombuffer(gzip.open(root + "t10k-images-idx3-ubyte.gz").read(), np.uint8, offset=16)
y = np.frombuffer(gzip.open(root + "t10k-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
np.save("runs/fashion/test_x.npy", (x[:128 * 784].reshape(128, 784) / 255).astype("float32"))
np.save("runs/fashion/test_y.npy", y[:128])
PY
last=$(ls runs/fashion/step-*.safetensors | tail -1)
build/bin/tessera run runs/fashion/model.tsrpkg --input runs/fashion/test_x.npy \
  --weights "$last" --output runs/fashion/logits.npy
/usr/bin/python3 -c "
import numpy as np
p = np.load('runs/fashion/logits.npy').argmax(1); y = np.load('runs/fashion/test_y.npy')
names = ['T-shirt', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Boot']
print('first 8 test images:', ', '.join(f'{names[a]} ({\"ok\" if a == b else \"true: \" + names[b]})' for a, b in zip(p[:8], y[:8])))
print(f'accuracy on these 128: {(p == y).mean() * 100:.1f}%')"
echo "loss curve: runs/fashion/loss.png, metrics: runs/fashion/metrics.jsonl"
