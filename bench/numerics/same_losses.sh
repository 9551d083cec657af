#!/usr/bin/env bash
# Does a change keep the numbers? Runs the same seeded trainings with two aios binaries (a build of
# the commit before the change, and one after) and compares every step's loss, gradient norm and
# validation loss as printed in the JSONL: a change meant to be numerics-neutral must give equal
# values. On a GPU: bf16 with every memory technique, fp32, fp16 with dropout, exact chunks and an
# injected out-of-memory. Some GPU kernels are not deterministic (fp32 attention's backward adds
# with atomics), so the baseline also runs twice: where it differs from itself, the new build may
# differ from it by as much, and the row says so.
# Usage: bench/numerics/same_losses.sh BASELINE_AIOS NEW_AIOS
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
  for which in old new repeat; do
    bin=$old; [ $which = new ] && bin=$new
    env=(); faults=(); [ "$name" = oom-at-3 ] && env=(AIOS_FAULT_OOM_AT_STEP=3) faults=(--fault-injection)
    rm -rf "$work/same-$which-$name"
    # shellcheck disable=SC2086
    env "${env[@]}" "$bin" train "${common[@]}" ${runs[$name]} "${faults[@]}" --out-dir "$work/same-$which-$name" \
      --log-file "$out/same-$which-$name.jsonl" > "$out/same-$which-$name.log" 2>&1 || echo "$name ($which) failed"
  done
  python3 - "$out/same-old-$name.jsonl" "$out/same-new-$name.jsonl" "$out/same-repeat-$name.jsonl" "$name" <<'PY' || status=1
import json, sys
def steps(path):
    return [(r["step"], r["loss"], r.get("grad_norm"), r.get("val_loss"), r["micro_batch"])
            for r in map(json.loads, open(path)) if r.get("type") == "step"]
def largest(a, b):
    return max((abs(x[1] - y[1]) for x, y in zip(a, b)), default=float("nan"))
old, new, repeat = (steps(p) for p in sys.argv[1:4])
within = largest(old, repeat)
if old == new and old:
    verdict = "equal"
elif old != repeat and len(new) == len(old) and largest(old, new) <= 2 * within:
    verdict = "within the baseline's own run-to-run spread"
else:
    verdict = "DIFFERENT"
print(f"{sys.argv[4]:16s} {verdict}: {len(old)} steps; largest loss difference {largest(old, new):.3g} "
      f"(baseline against itself: {within:.3g}); last losses {old[-1][1] if old else None} {new[-1][1] if new else None}")
sys.exit(0 if verdict != "DIFFERENT" else 1)
PY
done
exit $status
