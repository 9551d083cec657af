#!/usr/bin/env bash
# One device-tool call's worth of GPU work: runs the named stages in order inside a deadline and
# packs every log, JSONL and table into $OUT/results.tgz (the device tool returns at most 8 files).
# Stages: build test gpu-tests techniques-gpt2 techniques-gpt2-large max-batch convergence
#         long-context long-context-chunks (exact and truncated only) long-context-compare
#         reference-long-context trainer profile-gpt2 quick-gpt2 quick-gpt2-large-chunked-loss
#         long-context-chunk-sizes long-context-truncated long-context-128k long-context-exact-512k
#         build-aios (the program only) distributed distributed-speed distributed-final distributed-tests distributed-long-context
#         distributed-faults (2 GPUs)
# Usage (GPU machine, repository root): bench/gpu_session.sh [--deadline SECONDS] STAGE...
# Build outputs (build-gpu/) and generated shards (/tmp/aios-bench-work) stay on a warm machine,
# so a later call skips what an earlier one did.
set -uo pipefail
cd "$(dirname "$0")/.."
deadline=560
if [ "${1:-}" = --deadline ]; then deadline=$2; shift 2; fi
start=$(date +%s)
final_out=${OUT:-gpu-out}; mkdir -p "$final_out"
export OUT=/tmp/aios-bench-out/$(date +%H%M%S); mkdir -p "$OUT"
export AIOS_BENCH_WORK=/tmp/aios-bench-work; mkdir -p "$AIOS_BENCH_WORK"
export AIOS_BUILD_DIR=build-gpu
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export summary=$OUT/summary.txt

left() { echo $((deadline - ($(date +%s) - start))); }
note() { echo "[$(( $(date +%s) - start ))s] $*" | tee -a "$summary"; }

stage_build() {
  {
    date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
    nvcc --version | tail -1; cmake --version | head -1; nproc
  } > "$OUT/machine.txt" 2>&1
  if ! AIOS_BUILD_TARGET=${AIOS_BUILD_TARGET:-} scripts/build.sh > "$OUT/build.log" 2>&1; then
    # Keep going past the first failure so one call reports every compile error.
    cmake --build build-gpu -- -k 0 >> "$OUT/build.log" 2>&1
    grep -E "error|Error" -A4 "$OUT/build.log" | head -80 | tee -a "$summary"
    return 1
  fi
  build-gpu/aios --version | tee -a "$summary"
}

stage_test() {
  # Two OpenMP threads per test: twelve CPU tests at once with one thread per core each oversubscribe
  # the 16 cores until some time out.
  OMP_NUM_THREADS=2 ctest --test-dir build-gpu --output-on-failure --timeout 300 -j 8 > "$OUT/ctest.log" 2>&1
  local status=$?
  grep -E "tests passed|tests failed|\(Failed\)|\(Timeout\)|\*\*\*" "$OUT/ctest.log" | head -30 | tee -a "$summary"
  # The GPU tests by name: they must have run here, not skipped.
  build-gpu/tests/aios_tests --gtest_filter='*Cuda*:*Gpu*:*GPU*' > "$OUT/gpu_tests.log" 2>&1
  grep -E "^\[ +(OK|FAILED|SKIPPED) +\]|PASSED|FAILED" "$OUT/gpu_tests.log" | head -20 | tee -a "$summary"
  return $status
}

# The tests that need a GPU only (the whole suite is stage "test").
stage_gpu-tests() {
  build-gpu/tests/aios_tests --gtest_filter='*Cuda*:*Gpu*:*GPU*' > "$OUT/gpu_tests.log" 2>&1
  local status=$?
  grep -E "^\[ +(OK|FAILED|SKIPPED) +\]|PASSED|FAILED|Failure|Expected|Which is" "$OUT/gpu_tests.log" | head -40 | tee -a "$summary"
  return $status
}

# The program alone (no tests): the quickest start for benchmarks on a fresh machine.
stage_build-aios() { AIOS_BUILD_TARGET=aios stage_build; }
# Issue 5 on a 2-GPU machine (nvidia-h200-x2): NCCL ranks against one GPU.
stage_distributed() { bench/gpu_distributed_bench.sh curves scaling oom; }
stage_distributed-final() { bench/gpu_distributed_bench.sh transport headline oom; }
stage_distributed-faults() { bench/gpu_distributed_bench.sh faults; }
stage_distributed-long-context() { bench/gpu_distributed_bench.sh long-context; }
stage_distributed-speed() { bench/gpu_distributed_bench.sh scaling buckets profile curves; }
stage_distributed-tests() {
  build-gpu/tests/aios_tests --gtest_filter='*TwoGpus*:*Nccl*' > "$OUT/distributed_tests.log" 2>&1
  local status=$?
  grep -E "^\[ +(OK|FAILED|SKIPPED) +\]|PASSED|FAILED|Failure|Expected|Which is" "$OUT/distributed_tests.log" | head -40 | tee -a "$summary"
  return $status
}

stage_trainer() { bench/prepare_throughput.sh 100 > "$OUT/prepare_throughput.txt" 2>&1; bench/gpu_trainer_bench.sh gpt2 16 60; }
stage_techniques-gpt2() { bench/gpu_techniques_bench.sh gpt2 16 20; }
stage_techniques-gpt2-large() { bench/gpu_techniques_bench.sh gpt2-large 8 12; }
stage_max-batch() { bench/gpu_max_batch.sh gpt2-large 512; }
stage_convergence() { bench/gpu_convergence.sh gpt2 16 300; }
# aios alone, the rows whose speed a change targets (compare with a reference run of the same day).
stage_quick-gpt2() {
  source bench/gpu_common.sh
  local shards
  shards=$(bench_shards)
  quick_aios_rows gpt2 16 amp-bf16 all-together
  for window in 4096 16384; do  # truncated chunks (their checkpointed backward failed before)
    "$bin" train --model gpt2 --pos rope --vocab-size 50257 --dataset-file "$shards" --window-size $window \
      --batch-size 1 --steps 3 --warmup-steps 1 --amp --amp-dtype bf16 --gradient-checkpointing --chunked-loss \
      --chunked-training --chunk-size 2048 --chunk-mode truncated --chunk-memory 2048 --eval-batches 0 --device cuda \
      --out-dir "$work/quick-truncated" --log-file "$out/quick-truncated-$window.jsonl" 2>&1 | grep -E "step 3|error"
    rm -rf "$work/quick-truncated"
  done
}

# gpt2-large's bf16 rows with the chunked loss (their loss curve left the plain bf16 row's).
stage_quick-gpt2-large-chunked-loss() { source bench/gpu_common.sh; quick_aios_rows gpt2-large 8 amp-chunked-loss; }
stage_profile-gpt2() { bench/gpu_profile_bench.sh gpt2 16; }
stage_long-context() { bench/gpu_long_context_bench.sh 2048 4; }
stage_long-context-chunks() { bench/gpu_long_context_bench.sh 2048 3 "exact truncated" 1048576 120; }
# Exact chunks without block checkpointing against whole windows, run side by side up to 128k.
stage_long-context-compare() { bench/gpu_long_context_bench.sh 2048 3 "exact-unchecked whole" 131072 120; }
stage_reference-long-context() { bench/gpu_reference_long_context.sh 3; }
# Exact chunks' speed against the chunk size, next to whole windows of the same day; step 3 of
# exact (no block checkpointing, 2,048-token chunks) and of the whole window at 16k is profiled.
stage_long-context-chunk-sizes() {
  export SEARCH=0
  WINDOWS=16384 PROFILE=1 bench/gpu_long_context_bench.sh 2048 8 "whole exact-unchecked"
  WINDOWS=65536 bench/gpu_long_context_bench.sh 2048 8 "whole exact-unchecked"
  for chunk in 4096 8192; do WINDOWS="16384 65536" bench/gpu_long_context_bench.sh $chunk 8 exact-unchecked; done
  WINDOWS="16384 65536" bench/gpu_long_context_bench.sh 8192 8 exact
  python3 bench/trace_summary.py 1 "$OUT/trace-exact-unchecked-c2048-16384.json" "$OUT/trace-whole-16384.json" \
    --labels exact,whole --top 25 > "$OUT/profile-exact-vs-whole-16384.md"
  head -12 "$OUT/profile-exact-vs-whole-16384.md"
  rm -f "$OUT"/trace-*.json  # tens of MB; the summary above is what is kept
}
# Truncated chunks far past what fits whole (their memory does not grow with the window), and
# cuDNN attention on a whole window past 64k.
stage_long-context-truncated() {
  SEARCH=0 WINDOWS="65536 262144 1048576" bench/gpu_long_context_bench.sh 2048 3 truncated 1048576 200
  SEARCH=0 WINDOWS=131072 bench/gpu_long_context_bench.sh 2048 3 whole-cudnn
}
# Whole windows against exact chunks of 8,192 tokens at 128k.
stage_long-context-128k() { SEARCH=0 WINDOWS=131072 bench/gpu_long_context_bench.sh 8192 6 "whole exact-unchecked"; }
# Exact chunks at 512k tokens, the longest whole window measured (CHUNK from the environment).
stage_long-context-exact-512k() {
  SEARCH=0 WINDOWS=524288 bench/gpu_long_context_bench.sh "${CHUNK:-8192}" 2 exact-unchecked 524288 500
}

status=0
for stage in "$@"; do
  remaining=$(left)
  if [ "$remaining" -le 20 ]; then note "skipped $stage: deadline"; status=1; continue; fi
  note "start $stage (${remaining}s left)"
  timeout --signal=INT --kill-after=10 "$remaining" bash -c "$(declare -f); stage_$stage" \
    > "$OUT/$stage.out" 2>&1
  rc=$?
  tail -25 "$OUT/$stage.out" >> "$summary"
  note "end $stage rc=$rc"
  [ $rc -eq 0 ] || status=1
  case $stage in build*) [ $rc -ne 0 ] && break ;; esac
done
tar -C "$OUT" -czf "$final_out/results.tgz" . && cp "$summary" "$final_out/summary.txt"
exit $status
