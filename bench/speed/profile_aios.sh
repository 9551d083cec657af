#!/usr/bin/env bash
# Where aios's everything-on step spends more than its fastest row: one profiled step of each
# (steps 5-7, micro-batch 16, the shapes of vs_compile.sh), summed by kind of work side by side
# and then kernel by kernel with the difference. aios alone: no reference trainer runs, so the call
# is short. Steps run eagerly (--no-cuda-graphs) so that each kernel of the step is its own entry
# in the trace; the graph replays the same kernels.
# Usage (on the GPU machine): bench/speed/profile_aios.sh [MODEL=gpt2] [BATCH=16]
set -uo pipefail
cd "$(dirname "$0")/../.."
model=${1:-gpt2}; batch=${2:-16}
source bench/common.sh
shards=$(bench_shards); init=$(bench_init "$model" 50304)
common=(--dataset-file "$shards" --window-size 1024 --batch-size "$batch" --steps 8 --warmup-steps 2
        --profile-from 5 --profile-steps 3 --eval-batches 0 --device cuda --no-cuda-graphs)
traces=()
for row in amp-bf16 all-together; do
  rm -f "$work/trace-$row.json"
  # shellcheck disable=SC2046
  "$bin" train --init-from "$init" "${common[@]}" $(aios_flags_of "$row") --profile-file "$work/trace-$row.json" \
    --out-dir "$work/profile-aios-$row" --log-file "$out/profile-aios-$model-$row.jsonl" 2>&1 | grep -E "profile|error"
  rm -rf "$work/profile-aios-$row"
  traces+=("$work/trace-$row.json")
  gzip -c "$work/trace-$row.json" > "$out/trace-aios-$model-$row.json.gz"
done
python3 bench/speed/trace_summary.py 3 "${traces[@]}" --labels "whole head,everything on" --top 50 \
  | tee "$out/profile-aios-$model.md"
