#!/usr/bin/env bash
# Side by side on one GPU: aios vs the PyTorch-eager reference (bench/reference_trainer.py), the
# same GPT-2 weights (written once as safetensors, loaded by both), the same hyper-parameters and
# the same token windows. fp32, no AMP, no checkpointing (issue 3's baseline).
# Usage (on the GPU machine): bench/gpu_trainer_bench.sh [MODEL=gpt2] [BATCH=16] [STEPS=100]
set -uo pipefail
cd "$(dirname "$0")/.."
model=${1:-gpt2}; batch=${2:-16}; steps=${3:-100}
out=${OUT:-bench-out}; mkdir -p "$out"; work=$(mktemp -d)
export AIOS_BUILD_DIR=${AIOS_BUILD_DIR:-build-gpu}
bin=$AIOS_BUILD_DIR/aios
[ -x "$bin" ] || scripts/build.sh > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
python3 scripts/make_demo_corpus.py "$work/corpus" --bytes 40000000 --files 8 --seed 7
"$bin" prepare "$work/corpus" --output "$work/shards" --val-fraction 0.005
python3 bench/reference_trainer.py init --out "$work/init" --model "$model" --vocab-size 50257
common=(--dataset-file "$work/shards" --window-size 1024 --batch-size "$batch" --steps "$steps" --warmup-steps 10
        --lr 6e-4 --min-lr 6e-5)
"$bin" train --init-from "$work/init" "${common[@]}" --no-amp --no-gradient-checkpointing --no-chunked-loss --eval-batches 0 \
  --device cuda --out-dir "$work/aios-run" --log-file "$out/aios-$model.jsonl" 2>&1 | tail -3
python3 bench/reference_trainer.py train --init "$work/init" "${common[@]}" --log-file "$out/reference-$model.jsonl"
python3 bench/compare_runs.py "$out/aios-$model.jsonl" "$out/reference-$model.jsonl" | tee "$out/table-$model.md"
rm -rf "$work"
