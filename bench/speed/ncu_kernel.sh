#!/usr/bin/env bash
# Nsight Compute's view of one kernel in a training step: throughput against the GPU's peaks,
# occupancy, what the warps wait on, and the instruction mix, for the first two launches of the
# kernels whose names match REGEX after the warm-up steps. aios alone, GPT-2 124M at micro-batch 16
# (the shapes of vs_compile.sh), the technique row ROW (default all-together: everything on).
# Writes $OUT/ncu-NAME.txt; says so and does nothing where ncu is not installed.
# Usage (on the GPU machine): bench/speed/ncu_kernel.sh REGEX [ROW] [NAME]
set -uo pipefail
cd "$(dirname "$0")/../.."
regex=$1; row=${2:-all-together}; name=${3:-kernel}
ncu=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
if [ -z "$ncu" ]; then echo "ncu_kernel: no ncu on this machine"; exit 0; fi
source bench/common.sh
shards=$(bench_shards); init=$(bench_init gpt2 50304)
# shellcheck disable=SC2046
"$ncu" --kernel-name "regex:$regex" --launch-skip 4 --launch-count 2 \
  --section SpeedOfLight --section Occupancy --section WarpStateStats --section InstructionStats \
  --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis \
  "$bin" train --init-from "$init" --dataset-file "$shards" --window-size 1024 --batch-size 16 --steps 4 \
  --warmup-steps 2 --eval-batches 0 --device cuda --no-cuda-graphs $(aios_flags_of "$row") \
  --out-dir "$work/ncu-$name" > "$out/ncu-$name.txt" 2>&1
status=$?
rm -rf "$work/ncu-$name"
grep -E "Duration|Throughput|Occupancy|Registers|Issue Slots|Executed Ipc|Stall|Warp Cycles|Branch|No Eligible" \
  "$out/ncu-$name.txt" | head -60
exit $status
