#!/usr/bin/env bash
# Side by side on one GPU: aios vs the PyTorch-eager reference (bench/reference_trainer.py), the
# same GPT-2 weights (written once as safetensors, loaded by both), the same hyper-parameters and
# the same token windows. fp32, no AMP, no checkpointing (issue 3's baseline).
# Usage (on the GPU machine): bench/speed/vs_reference.sh [MODEL=gpt2] [BATCH=16] [STEPS=100]
set -uo pipefail
cd "$(dirname "$0")/../.."
model=${1:-gpt2}; batch=${2:-16}; steps=${3:-100}
source bench/common.sh
shards=$(bench_shards 40000000); init=$(bench_init "$model")
common=(--dataset-file "$shards" --window-size 1024 --batch-size "$batch" --steps "$steps" --warmup-steps 10
        --lr 6e-4 --min-lr 6e-5)
"$bin" train --init-from "$init" "${common[@]}" --no-amp --no-gradient-checkpointing --no-chunked-loss --eval-batches 0 \
  --device cuda --out-dir "$work/aios-run" --log-file "$out/aios-$model.jsonl" 2>&1 | tail -3
python3 bench/reference_trainer.py train --init "$init" "${common[@]}" --log-file "$out/reference-$model.jsonl"
python3 bench/speed/compare_runs.py "$out/aios-$model.jsonl" "$out/reference-$model.jsonl" | tee "$out/table-$model.md"
rm -rf "$work/aios-run"
