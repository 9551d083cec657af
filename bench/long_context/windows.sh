#!/usr/bin/env bash
# Issue 6's table: GPT-2 124M with rotary positions at micro-batch 1, bf16, checkpointing and
# chunked loss on: tokens/s and peak memory at windows 4k, 16k, 64k for the whole window (flash
# attention), truncated chunks, exact chunks and exact chunks without block checkpointing; then
# the largest window each trains (doubling from 4k until a run fails, gives up after RUN_LIMIT
# seconds or passes MAX_WINDOW).
# Usage (GPU machine): bench/long_context/windows.sh [CHUNK=2048] [STEPS=4] [MODES="whole truncated exact exact-unchecked"]
#                      [MAX_WINDOW=1048576] [RUN_LIMIT=150]
# Environment: WINDOWS (default "4096 16384 65536") the table's windows; SEARCH=0 skips the search
# for the largest window; PROFILE=1 also writes a Chrome trace of step 3 per run (--steps >= 3).
# Modes: whole, whole-cudnn (--attention cudnn), truncated, exact, exact-unchecked. Files of chunked
# modes carry the chunk size (long-context-exact-c2048-16384.jsonl).
set -uo pipefail
cd "$(dirname "$0")/../.."
chunk=${1:-2048}; steps=${2:-4}; mode_list=${3:-whole truncated exact exact-unchecked}; max_window=${4:-1048576}; run_limit=${5:-150}
source bench/common.sh
shards=$(bench_shards 200000000)
# exact-unchecked: exact chunks without checkpointing each chunk's blocks. Exact mode recomputes
# every chunk in its second pass already; checkpointing the blocks on top adds a third forward
# and saves one chunk's activations (docs/long-context.md).
windows=${WINDOWS:-4096 16384 65536}
declare -A modes=([whole]="--gradient-checkpointing"
                  [whole-cudnn]="--gradient-checkpointing --attention cudnn"
                  [truncated]="--gradient-checkpointing --chunked-training --chunk-size $chunk --chunk-mode truncated --chunk-memory $chunk"
                  [exact]="--gradient-checkpointing --chunked-training --chunk-size $chunk --chunk-mode exact"
                  [exact-unchecked]="--no-gradient-checkpointing --chunked-training --chunk-size $chunk --chunk-mode exact")
name() { case $1 in whole*) echo "$1-$2" ;; *) echo "$1-c$chunk-$2" ;; esac; }
run() {  # MODE WINDOW -> JSONL in $out, status
  local n profile=()
  n=$(name "$1" "$2")
  [ "${PROFILE:-0}" = 1 ] && profile=(--profile-file "$out/trace-$n.json" --profile-from 3 --profile-steps 1)
  # shellcheck disable=SC2086
  timeout --signal=INT "$run_limit" "$bin" train --model gpt2 --pos rope --vocab-size 50257 --dataset-file "$shards" --window-size "$2" --batch-size 1 \
    --steps "$steps" --warmup-steps 1 --amp --amp-dtype bf16 --chunked-loss --eval-batches 0 "${profile[@]}" \
    --device cuda --out-dir "$work/lc-$n" --log-file "$out/long-context-$n.jsonl" ${modes[$1]} \
    > "$out/long-context-$n.log" 2>&1
  local status=$?; rm -rf "$work/lc-$n"; return $status
}
table=$out/table-long-context.md
[ -f "$table" ] || printf '| mode | chunk | window | tokens/s | peak allocated GiB | loss at the last step |\n| --- | --- | --- | --- | --- | --- |\n' > "$table"
cat "$table"
for mode in $mode_list; do
  largest=0
  c=$chunk; case $mode in whole*) c=– ;; esac
  for window in $windows; do
    if run "$mode" "$window"; then
      largest=$window
      python3 - "$out/long-context-$(name "$mode" "$window").jsonl" "$mode" "$window" "$c" <<'PY' | tee -a "$table"
import json, statistics, sys
s = [r for r in map(json.loads, open(sys.argv[1])) if r.get("type") == "step"]
# The second half of the steps: the first ones still grow the allocator's pool (measured: 16k-token
# steps at 58k, then 85k tokens/s).
print(f"| {sys.argv[2]} | {sys.argv[4]} | {sys.argv[3]} | {statistics.median(r['tokens_per_s'] for r in s[len(s) // 2:]):,.0f} | "
      f"{max(r['peak_allocated_bytes'] for r in s) / 2**30:.2f} | {s[-1]['loss']:.4f} |")
PY
    else
      echo "| $mode | $c | $window | does not fit or ran over ${run_limit} s (see long-context-$(name "$mode" "$window").log) | | |" |
        tee -a "$table"
    fi
  done
  [ "${SEARCH:-1}" = 0 ] && continue
  # The largest window: keep doubling from the largest row that trained.
  window=$(( largest > 0 ? largest * 2 : 2048 ))
  while [ "$window" -le "$max_window" ] && run "$mode" "$window"; do largest=$window; window=$((window * 2)); done
  reason="did not fit or ran over ${run_limit} s"; [ "$window" -gt "$max_window" ] && reason="past the bench's limit"
  echo "| $mode | $c | largest window that trains: $largest (next, $window: $reason) | | | |" | tee -a "$table"
done
