#!/usr/bin/env bash
# Does the fast path train as the old one did? 300 steps (or STEPS) of GPT-2 124M, window 1024,
# micro-batch 16, bf16, from the same initial weights on the same windows, with two aios binaries:
# a build of an earlier commit (the baseline) and this one. Two rows: the whole head (no
# checkpointing, no chunked loss; the new build captures its step as a CUDA graph) and everything
# on (configs/techniques/all-together.toml). Prints, per row, the mean loss of the last 50 steps of
# each binary and their relative difference, the last step's losses, and the largest difference
# of any one step.
# A loss spike in one run and not the other moves a row's mean for a hundred steps: a second SEED
# (another order of the windows for both binaries; the initial weights are the same file) tells
# such chance from a difference in the path.
# Usage (GPU machine, repository root): bench/numerics/loss_300.sh BASELINE_AIOS NEW_AIOS [STEPS=300] [SEED=1]
set -uo pipefail
cd "$(dirname "$0")/../.."
old=$1 new=$2 steps=${3:-300} seed=${4:-1}
source bench/common.sh
shards=$(bench_shards 40000000)
init=$(bench_init gpt2 50304)
common=(--init-from "$init" --dataset-file "$shards" --window-size 1024 --batch-size 16 --steps "$steps"
        --warmup-steps 30 --lr 6e-4 --min-lr 6e-5 --eval-batches 0 --seed "$seed" --device cuda)
declare -A flags=([whole-head]="--amp --amp-dtype bf16 --no-gradient-checkpointing --no-chunked-loss"
                  [everything-on]="--config configs/techniques/all-together.toml")
status=0
for row in whole-head everything-on; do
  for which in old new; do
    bin=$old; [ $which = new ] && bin=$new
    rm -rf "/dev/shm/aios-loss-$which-$row"
    # shellcheck disable=SC2086
    "$bin" train "${common[@]}" ${flags[$row]} --out-dir "/dev/shm/aios-loss-$which-$row" \
      --log-file "$out/loss-$steps-seed$seed-$which-$row.jsonl" > "$out/loss-$steps-seed$seed-$which-$row.log" 2>&1 ||
      { echo "$row ($which) failed:"; tail -3 "$out/loss-$steps-seed$seed-$which-$row.log"; status=1; }
    rm -rf "/dev/shm/aios-loss-$which-$row"
  done
  python3 - "$out/loss-$steps-seed$seed-old-$row.jsonl" "$out/loss-$steps-seed$seed-new-$row.jsonl" "$row, seed $seed" <<'PY' || status=1
import json, sys
def losses(path):
    try:
        return [r["loss"] for r in map(json.loads, open(path)) if r.get("type") == "step"]
    except OSError:
        return []
old, new, row = losses(sys.argv[1]), losses(sys.argv[2]), sys.argv[3]
if not old or len(old) != len(new):
    print(f"{row}: steps old {len(old)}, new {len(new)}: not comparable")
    sys.exit(1)
tail = min(50, len(old))
mean_old, mean_new = sum(old[-tail:]) / tail, sum(new[-tail:]) / tail
relative = (mean_new - mean_old) / mean_old
step_worst = max(abs(b - a) / a for a, b in zip(old, new))
print(f"| {row} | {len(old)} | {old[0]:.4f} / {new[0]:.4f} | {mean_old:.4f} / {mean_new:.4f} | {100 * relative:+.3f} % "
      f"| {old[-1]:.4f} / {new[-1]:.4f} | {100 * step_worst:.2f} % |")
sys.exit(0 if abs(relative) <= 0.005 else 1)
PY
done
exit $status
