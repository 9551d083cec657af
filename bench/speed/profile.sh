#!/usr/bin/env bash
# Kernel-by-kernel comparison of one training step, aios against the PyTorch reference with the
# same options, eager and under torch.compile: each writes a Chrome trace of steps 5-7 (aios
# --profile-file, the reference's torch.profiler), and bench/speed/trace_summary.py sums them by kind
# of work for the three, then kernel by kernel for aios against eager (the same ATen kernel names).
# Usage (on the GPU machine): bench/speed/profile.sh [MODEL=gpt2] [BATCH=16] [ROW...]
# ROW: amp-bf16 | all-together (default both).
set -uo pipefail
cd "$(dirname "$0")/../.."
model=${1:-gpt2}; batch=${2:-16}; shift 2 2>/dev/null || true
rows=("$@"); [ ${#rows[@]} -gt 0 ] || rows=(amp-bf16 all-together)
source bench/common.sh
shards=$(bench_shards); init=$(bench_init "$model" 50304)  # the shapes of vs_compile.sh
common=(--dataset-file "$shards" --window-size 1024 --batch-size "$batch" --steps 8 --warmup-steps 2
        --profile-file "$work/trace.json" --profile-from 5 --profile-steps 3)
for row in "${rows[@]}"; do
  rm -f "$work/trace.json" "$work/trace-reference.json" "$work/trace-compile.json"
  # shellcheck disable=SC2086
  "$bin" train --init-from "$init" "${common[@]}" $(aios_flags_of "$row") --eval-batches 0 --device cuda \
    --out-dir "$work/profile-$row" --log-file "$out/profile-aios-$model-$row.jsonl" 2>&1 | grep -E "profile|error"
  # shellcheck disable=SC2086
  python3 bench/reference_trainer.py train --init "$init" "${common[@]/trace.json/trace-reference.json}" \
    ${reference_flags[$row]} --log-file "$out/profile-reference-$model-$row.jsonl" 2>&1 | tail -2
  # shellcheck disable=SC2086
  python3 bench/reference_trainer.py train --init "$init" "${common[@]/trace.json/trace-compile.json}" --compile \
    ${reference_flags[$row]} --log-file "$out/profile-compile-$model-$row.jsonl" 2>&1 | tail -2
  # The traces that were written: a reference row can fail where its optimizer is not installed
  # (bitsandbytes for the 8-bit rows), and aios's trace is then summed alone.
  traces=() labels=()
  for pair in trace:aios trace-reference:eager trace-compile:compile; do
    [ -f "$work/${pair%%:*}.json" ] && traces+=("$work/${pair%%:*}.json") labels+=("${pair##*:}")
  done
  [ ${#traces[@]} -lt 3 ] && echo "profile $row: no trace from the reference rows missing above" >&2
  {
    python3 bench/speed/trace_summary.py 3 "${traces[@]}" --labels "$(IFS=,; echo "${labels[*]}")" --top 40
    if [ -f "$work/trace-reference.json" ]; then
      echo
      python3 bench/speed/trace_summary.py 3 "$work/trace.json" "$work/trace-reference.json" --labels aios,eager --top 40
    fi
  } | tee "$out/profile-$model-$row.md"
  for t in trace trace-reference trace-compile; do
    [ -f "$work/$t.json" ] && gzip -c "$work/$t.json" > "$out/$t-$model-$row.json.gz"
  done
  rm -rf "$work/profile-$row"
done
