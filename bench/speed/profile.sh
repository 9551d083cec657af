#!/usr/bin/env bash
# Kernel-by-kernel comparison of one training step, aios against the PyTorch-eager reference with
# the same options: both write a Chrome trace of steps 5-7 (aios --profile-file, the reference's
# torch.profiler), and bench/speed/trace_summary.py puts the kernels side by side.
# Usage (on the GPU machine): bench/speed/profile.sh [MODEL=gpt2] [BATCH=16] [ROW...]
# ROW: amp-bf16 | all-together (default both).
set -uo pipefail
cd "$(dirname "$0")/../.."
model=${1:-gpt2}; batch=${2:-16}; shift 2 2>/dev/null || true
rows=("$@"); [ ${#rows[@]} -gt 0 ] || rows=(amp-bf16 all-together)
source bench/common.sh
shards=$(bench_shards); init=$(bench_init "$model")
common=(--dataset-file "$shards" --window-size 1024 --batch-size "$batch" --steps 8 --warmup-steps 2
        --profile-file "$work/trace.json" --profile-from 5 --profile-steps 3)
for row in "${rows[@]}"; do
  rm -f "$work/trace.json" "$work/trace-reference.json"
  # shellcheck disable=SC2086
  "$bin" train --init-from "$init" "${common[@]}" $(aios_flags_of "$row") --eval-batches 0 --device cuda \
    --out-dir "$work/profile-$row" --log-file "$out/profile-aios-$model-$row.jsonl" 2>&1 | grep -E "profile|error"
  # shellcheck disable=SC2086
  python3 bench/reference_trainer.py train --init "$init" "${common[@]/trace.json/trace-reference.json}" \
    ${reference_flags[$row]} --log-file "$out/profile-reference-$model-$row.jsonl" 2>&1 | tail -2
  python3 bench/speed/trace_summary.py 3 "$work/trace.json" "$work/trace-reference.json" --labels aios,reference --top 40 \
    | tee "$out/profile-$model-$row.md"
  rm -rf "$work/profile-$row"
done
