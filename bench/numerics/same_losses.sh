#!/usr/bin/env bash
# Does a change keep the numbers? Runs the same seeded trainings with two aios binaries (a build of
# the commit before the change, and one after) and compares every step's loss, gradient norm and
# validation loss as printed in the JSONL: a change meant to be numerics-neutral must give equal
# values. On a GPU: bf16 with every memory technique, fp32, fp16 with dropout, exact chunks and an
# injected out-of-memory. Usage: bench/numerics/same_losses.sh BASELINE_AIOS NEW_AIOS
set -uo pipefail
cd "$(dirname "$0")/../.."
old=$1 new=$2
out=${OUT:-bench-out}; mkdir -p "$out"
work=${AIOS_BENCH_WORK:-$(mktemp -d)}
device=$(python3 -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')
if [ ! -f "$work/same-losses-shards/manifest.json" ]; then
  python3 scripts/make_demo_corpus.py "$work/same-losses-corpus" --bytes 4000000 --files 2 --seed 3 > /dev/null
  "$new" prepare "$work/same-losses-corpus" --output "$work/same-losses-shards" --val-fraction 0.01 > /dev/null
fi
common=(--dataset-file "$work/same-losses-shards" --model gpt2 --n-layer 4 --vocab-size 50304 --window-size 256
        --batch-size 8 --steps 20 --warmup-steps 4 --eval-interval 10 --eval-batches 2 --device "$device")
declare -A runs=(
  [bf16-everything]="--amp --amp-dtype bf16 --gradient-checkpointing --chunked-loss --use-8bit-optimizer --gradient-accumulation-steps 2"
  [fp32]="--no-amp --no-gradient-checkpointing --no-chunked-loss"
  [fp16-dropout]="--amp --amp-dtype fp16 --no-gradient-checkpointing --dropout 0.1"
  [exact-chunks]="--amp --amp-dtype bf16 --pos rope --chunked-training --chunk-size 64 --no-gradient-checkpointing"
  [oom-at-3]="--amp --amp-dtype bf16 --no-gradient-checkpointing")
status=0
for name in "${!runs[@]}"; do
  for which in old new; do
    bin=$old; [ $which = new ] && bin=$new
    env=(); [ "$name" = oom-at-3 ] && env=(AIOS_FAULT_OOM_AT_STEP=3)
    rm -rf "$work/same-$which-$name"
    # shellcheck disable=SC2086
    env "${env[@]}" "$bin" train "${common[@]}" ${runs[$name]} --out-dir "$work/same-$which-$name" \
      --log-file "$out/same-$which-$name.jsonl" > "$out/same-$which-$name.log" 2>&1 || echo "$name ($which) failed"
  done
  python3 - "$out/same-old-$name.jsonl" "$out/same-new-$name.jsonl" "$name" <<'PY' || status=1
import json, sys
def steps(path):
    return [(r["step"], r["loss"], r.get("grad_norm"), r.get("val_loss"), r["micro_batch"])
            for r in map(json.loads, open(path)) if r.get("type") == "step"]
a, b = steps(sys.argv[1]), steps(sys.argv[2])
same = a == b and len(a) > 0
worst = max((abs(x[1] - y[1]) for x, y in zip(a, b)), default=float("nan"))
print(f"{sys.argv[3]:16s} {'equal' if same else 'DIFFERENT'}: {len(a)} and {len(b)} steps, "
      f"largest loss difference {worst:.3g}, last losses {a[-1][1] if a else None} {b[-1][1] if b else None}")
sys.exit(0 if same else 1)
PY
done
exit $status
