#!/usr/bin/env bash
# Issue 6's comparison: the Python reference (bench/reference_trainer.py: PyTorch eager, SDPA with
# is_causal, torch.autocast bf16, torch.utils.checkpoint per block, rotary positions as aios's)
# on GPT-2 124M at micro-batch 1, at growing windows until one does not fit: tokens/s and peak
# memory, and its largest window. It has no chunked loss, so its fp32 logits grow with the window.
# Compare with bench/long_context/windows.sh (aios, same model and data).
# Usage (GPU machine): bench/long_context/reference.sh [STEPS=3] [WINDOWS="4096 16384 32768 65536 131072"]
#                      [RUN_LIMIT=120]
set -uo pipefail
cd "$(dirname "$0")/../.."
steps=${1:-3}; windows=${2:-4096 16384 32768 65536 131072}; run_limit=${3:-120}
source bench/common.sh
shards=$(bench_shards 200000000)
init=$(bench_init gpt2)
echo "| window | reference tokens/s | reference peak allocated GiB |" | tee "$out/table-reference-long-context.md"
echo "| --- | --- | --- |" | tee -a "$out/table-reference-long-context.md"
largest=0
for window in $windows; do
  if timeout --signal=INT "$run_limit" python3 bench/reference_trainer.py train --init "$init" --dataset-file "$shards" \
       --pos rope --window-size "$window" --batch-size 1 --steps "$steps" --warmup-steps 1 --amp --checkpointing \
       --log-file "$out/reference-long-context-$window.jsonl" > "$out/reference-long-context-$window.log" 2>&1; then
    largest=$window
    python3 - "$out/reference-long-context-$window.jsonl" "$window" <<'PY' | tee -a "$out/table-reference-long-context.md"
import json, statistics, sys
s = [r for r in map(json.loads, open(sys.argv[1])) if r.get("type") == "step"]
print(f"| {sys.argv[2]} | {statistics.median(r['tokens_per_s'] for r in s[1:] or s):,.0f} | "
      f"{max(r['peak_allocated_bytes'] for r in s) / 2**30:.2f} |")
PY
  else
    reason=$(grep -m1 -o "OutOfMemoryError[^.]*" "$out/reference-long-context-$window.log" || echo "failed or ran over ${run_limit} s")
    echo "| $window | does not train: $reason | |" | tee -a "$out/table-reference-long-context.md"
    break
  fi
done
echo "| largest window that trains: $largest | | |" | tee -a "$out/table-reference-long-context.md"
