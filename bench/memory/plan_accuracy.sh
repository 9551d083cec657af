#!/usr/bin/env bash
# aios plan against the GPU: for each configuration of bench/memory/plan_configs.txt, the planned
# peak (aios plan, when this build has it) and the measured peak of 2 training steps (the largest
# of the steps' peaks: the first step also creates the optimizer state). Prints one table.
# Usage (on the GPU machine): bench/memory/plan_accuracy.sh [CONFIG_NAME...]
set -uo pipefail
cd "$(dirname "$0")/../.."
source bench/common.sh
shards=$(bench_shards)
have_plan=0; "$bin" plan --help > /dev/null 2>&1 && have_plan=1
while read -r name flags; do
  case $name in ''|'#'*) continue ;; esac
  if [ $# -gt 0 ] && [[ " $* " != *" $name "* ]]; then continue; fi
  window=1024; [[ $flags == *--window-size* ]] || flags="$flags --window-size $window"
  # shellcheck disable=SC2086
  if [ $have_plan = 1 ]; then
    "$bin" plan $flags --vocab-size 50257 --device cuda --json > "$out/plan-$name.json" 2> "$out/plan-$name.err" ||
      head -3 "$out/plan-$name.err"
  fi
  # shellcheck disable=SC2086
  "$bin" train $flags --vocab-size 50257 --dataset-file "$shards" --steps 2 --warmup-steps 1 --eval-batches 0 \
    --device cuda --out-dir "$work/plan-run-$name" --log-file "$out/measured-$name.jsonl" \
    > "$out/train-$name.log" 2>&1 || tail -3 "$out/train-$name.log"
  rm -rf "$work/plan-run-$name"
  echo "$name done"
done < bench/memory/plan_configs.txt
python3 bench/memory/plan_table.py "$out" bench/memory/plan_configs.txt | tee "$out/table-plan-accuracy.md"
