#!/usr/bin/env bash
# aios's memory techniques one by one on one GPU: same weights, data and options (fp32, window
# 1024). Prints peak allocated memory, tokens/s (median of steps 11..STEPS) and the final loss.
# Usage (on the GPU machine): bench/gpu_memory_bench.sh [MODEL=gpt2] [BATCH=16] [STEPS=30]
set -uo pipefail
cd "$(dirname "$0")/.."
model=${1:-gpt2}; batch=${2:-16}; steps=${3:-30}
out=${OUT:-bench-out}; mkdir -p "$out"; work=$(mktemp -d)
export AIOS_BUILD_DIR=${AIOS_BUILD_DIR:-build-gpu}
bin=$AIOS_BUILD_DIR/aios
[ -x "$bin" ] || scripts/build.sh > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
python3 scripts/make_demo_corpus.py "$work/corpus" --bytes 20000000 --files 4 --seed 7
"$bin" prepare "$work/corpus" --output "$work/shards" --val-fraction 0.005 > /dev/null
python3 bench/reference_trainer.py init --out "$work/init" --model "$model" --vocab-size 50257
declare -A flags=(
  [baseline]="--no-gradient-checkpointing --no-chunked-loss"
  [chunked-loss]="--no-gradient-checkpointing --chunked-loss"
  [checkpointing]="--gradient-checkpointing --no-chunked-loss"
  [checkpointing-and-chunked-loss]="--gradient-checkpointing --chunked-loss")
modes=(baseline chunked-loss checkpointing checkpointing-and-chunked-loss)
for mode in "${modes[@]}"; do
  # shellcheck disable=SC2086
  "$bin" train --init-from "$work/init" --dataset-file "$work/shards" --window-size 1024 --batch-size "$batch" \
    --steps "$steps" --warmup-steps 10 --no-amp ${flags[$mode]} --eval-batches 0 --device cuda \
    --out-dir "$work/$mode" --log-file "$out/aios-$model-$mode.jsonl" 2>&1 | tail -1
done
python3 - "$out" "$model" "${modes[@]}" <<'PY' | tee "$out/table-$model-memory.md"
import json, statistics, sys
out, model, modes = sys.argv[1], sys.argv[2], sys.argv[3:]
print("| aios run (fp32) | tokens/s | peak allocated (GiB) | final loss |")
print("| --- | --- | --- | --- |")
for mode in modes:
    s = [r for r in map(json.loads, open(f"{out}/aios-{model}-{mode}.jsonl")) if r.get("type") == "step"]
    tps = statistics.median(r["tokens_per_s"] for r in s[10:])
    peak = max(r["peak_allocated_bytes"] for r in s) / 2**30
    print(f"| {mode} | {tps:,.0f} | {peak:.2f} | {s[-1]['loss']:.4f} |")
PY
rm -rf "$work"
