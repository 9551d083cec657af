#!/usr/bin/env bash
# Issue 4's measured table: each memory technique alone and all together, aios against the
# PyTorch-eager reference with PyTorch's own equivalents (torch.autocast bf16,
# torch.utils.checkpoint, bitsandbytes AdamW8bit), same weights, data, window 1024 and batch.
# Usage (on the GPU machine): bench/memory/techniques.sh [MODEL=gpt2] [BATCH=16] [STEPS=20]
set -uo pipefail
cd "$(dirname "$0")/../.."
model=${1:-gpt2}; batch=${2:-16}; steps=${3:-20}
source bench/common.sh
shards=$(bench_shards); init=$(bench_init "$model")
# amp-chunked-loss against chunked-loss is AMP's saving without the fp32 logits (no reference row).
rows=(fp32-baseline amp-bf16 checkpointing 8bit-adamw chunked-loss amp-chunked-loss all-together)
common=(--dataset-file "$shards" --window-size 1024 --batch-size "$batch" --steps "$steps" --warmup-steps 5
        --lr 6e-4 --min-lr 6e-5)
for row in "${rows[@]}"; do
  # shellcheck disable=SC2086
  "$bin" train --init-from "$init" "${common[@]}" $(aios_flags_of "$row") --eval-batches 0 --device cuda \
    --out-dir "$work/run-$model-$row" --log-file "$out/aios-$model-$row.jsonl" 2>&1 | grep -E "precision|error" | head -2
  if [ -n "${reference_flags[$row]+set}" ]; then
    # shellcheck disable=SC2086
    python3 bench/reference_trainer.py train --init "$init" "${common[@]}" ${reference_flags[$row]} \
      --log-file "$out/reference-$model-$row.jsonl" 2>&1 | tail -2
  fi
  rm -rf "$work/run-$model-$row"
done
python3 bench/memory/techniques_table.py "$out" "$model" "${rows[@]}" | tee "$out/table-$model-techniques.md"
