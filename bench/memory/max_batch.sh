#!/usr/bin/env bash
# The largest micro-batch that trains MODEL at window 1024 with every technique on: aios finds it
# with its own out-of-memory recovery (start at LIMIT, halve until a step fits); the reference
# (bf16 autocast + torch.utils.checkpoint + bitsandbytes AdamW8bit) doubles from 1 until it does
# not fit. Both report a power of two.
# Usage (on the GPU machine): bench/memory/max_batch.sh [MODEL=gpt2-large] [LIMIT=512]
set -uo pipefail
cd "$(dirname "$0")/../.."
model=${1:-gpt2-large}; limit=${2:-512}
source bench/common.sh
shards=$(bench_shards); init=$(bench_init "$model")
"$bin" train --init-from "$init" --dataset-file "$shards" --window-size 1024 --batch-size "$limit" --steps 2 \
  --warmup-steps 1 $(aios_flags_of all-together) \
  --eval-batches 0 --device cuda --out-dir "$work/max-$model" --log-file "$out/aios-$model-max-batch.jsonl" 2>&1 |
  grep -E "out of memory|error" | head -12
aios_fit=$(python3 -c "import json,sys; s=[json.loads(l) for l in open(sys.argv[1])]; s=[r for r in s if r.get('type')=='step']; print(s[-1]['micro_batch'] if s else 0)" "$out/aios-$model-max-batch.jsonl")
reference=$(python3 bench/reference_trainer.py max-batch --init "$init" --dataset-file "$shards" --window-size 1024 \
  ${reference_flags[all-together]} --batch-limit "$limit" 2>&1 | tail -1)
echo "| $model, window 1024, everything on | aios: $aios_fit | reference: $reference |" | tee "$out/table-$model-max-batch.md"
rm -rf "$work/max-$model"
