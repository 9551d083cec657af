#!/usr/bin/env bash
# Fresh machine to a trained model: installs dependencies, builds, makes the demo corpus,
# prepares shards and trains the tiny preset on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
# The project's Python (scripts/install_deps.sh made it), where there is one.
if [ -x .venv/bin/python3 ]; then export PATH="$PWD/.venv/bin:$PATH"; fi
scripts/build.sh
python3 scripts/make_demo_corpus.py data/demo --bytes 2000000 --files 4
build/aios prepare data/demo --output shards/demo --overwrite --val-fraction 0.02
build/aios inspect shards/demo --verify --preview-tokens 0
# --overwrite: a second demo trains afresh in runs/demo (a run never writes over another's
# checkpoints unasked).
build/aios train --config configs/tiny-demo.toml --no-amp \
  --log-file runs/demo/metrics.jsonl --out-dir runs/demo --overwrite
echo "demo: metrics in runs/demo/metrics.jsonl, checkpoint in runs/demo/"
