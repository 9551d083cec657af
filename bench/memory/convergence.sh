#!/usr/bin/env bash
# Loss after STEPS steps with every technique on against the fp32 baseline (same weights, data
# and batch). Target (issue 4): within 2%.
# Usage (on the GPU machine): bench/memory/convergence.sh [MODEL=gpt2] [BATCH=16] [STEPS=300]
set -uo pipefail
cd "$(dirname "$0")/../.."
model=${1:-gpt2}; batch=${2:-16}; steps=${3:-300}
source bench/common.sh
shards=$(bench_shards 60000000); init=$(bench_init "$model")
common=(--init-from "$init" --dataset-file "$shards" --window-size 1024 --batch-size "$batch" --steps "$steps"
        --warmup-steps 30 --lr 6e-4 --min-lr 6e-5 --eval-batches 0 --device cuda)
"$bin" train "${common[@]}" --no-amp --no-gradient-checkpointing --no-chunked-loss --out-dir "$work/c-base" \
  --log-file "$out/aios-$model-convergence-fp32.jsonl" 2>&1 | tail -1
"$bin" train "${common[@]}" --amp --amp-dtype bf16 --gradient-checkpointing --chunked-loss --use-8bit-optimizer \
  --out-dir "$work/c-all" --log-file "$out/aios-$model-convergence-all.jsonl" 2>&1 | tail -1
python3 - "$out" "$model" "$steps" <<'PY' | tee "$out/table-$model-convergence.md"
import json, sys
out, model, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
def tail(name):
    s = [r for r in map(json.loads, open(f"{out}/aios-{model}-convergence-{name}.jsonl")) if r.get("type") == "step"]
    return sum(r["loss"] for r in s[-10:]) / len(s[-10:]), len(s)
base, n = tail("fp32")
allon, m = tail("all")
print(f"| {model}, {n} / {m} steps | fp32 baseline: {base:.4f} | everything on: {allon:.4f} | gap {100 * abs(allon - base) / base:.2f}% (mean of the last 10 steps) |")
PY
rm -rf "$work/c-base" "$work/c-all"
