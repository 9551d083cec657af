#!/usr/bin/env bash
# The one GPU entry point: one device-tool call's worth of work. Runs the named stages in order
# inside a deadline and packs every log, JSONL and table into $OUT/results.tgz (the device tool
# returns at most 8 files). Stages, by the question they answer (bench/README.md):
#   build, build-aios          the whole tree with tests, or the program alone
#   test                       the test suite (scripts/test.sh), then the GPU tests by name: none may skip
#   same-losses                this build against BASELINE_BIN (a build of another commit): equal losses?
#   baseline, loss-300         builds .deps/baseline (bench/numerics/baseline_tree.sh COMMIT, run before the
#                              call); 300 steps of GPT-2 with it and with this build: losses within 0.5 %?
#                              (LOSS_SEEDS="1 2" for more seeds than 1)
#   speed, profile, profile-amp  aios against the PyTorch reference trainer; a kernel-by-kernel profile (both rows, or bf16 alone)
#   profile-aios               aios alone: everything on against the fastest row, kernel by kernel
#   ncu-8bit                   Nsight Compute on the 8-bit AdamW kernel in an everything-on step
#   vs-compile, vs-compile-32, vs-compile-large   aios against PyTorch eager and torch.compile (bf16)
#   vs-compile-quick           the fastest row and everything on against torch.compile, 100 steps
#   memory, memory-large, max-batch, convergence    the memory techniques, alone and together
#   long-context, long-context-reference            long windows, whole and in chunks
#   distributed, distributed-tests                  2 GPUs and more (a multi-GPU kind)
#   data, data-bpe             prepare's throughput (byte tokenizer; GPT-2's BPE, .deps/gpt2.tiktoken)
#   sample-speed               aios sample's tokens/s against plain PyTorch generation
#   plan-accuracy              aios plan's planned peak memory against the measured peak
# Usage (GPU machine, repository root): bench/run.sh [--deadline SECONDS] STAGE...
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

# The GPU image has PCRE2's library but not its header: a carried copy (.deps/pcre2/include, from
# Debian's libpcre2-dev) and a link to the library let CMake find both.
if [ ! -f /usr/include/pcre2.h ] && [ -f .deps/pcre2/include/pcre2.h ]; then
  mkdir -p /tmp/aios-pcre2/lib
  ln -sf "$(ls /usr/lib/x86_64-linux-gnu/libpcre2-8.so.0 2>/dev/null | head -1)" /tmp/aios-pcre2/lib/libpcre2-8.so
  export CMAKE_INCLUDE_PATH=$PWD/.deps/pcre2/include CMAKE_LIBRARY_PATH=/tmp/aios-pcre2/lib
fi

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
  AIOS_NO_INSTALL=1 scripts/test.sh > "$OUT/ctest.log" 2>&1
  local status=$?
  grep -E "tests passed|tests failed|\(Failed\)|\(Timeout\)|\*\*\*" "$OUT/ctest.log" | head -30 | tee -a "$summary"
  stage_gpu-tests || status=1
  return $status
}

# The tests that need GPUs, by name: here they must run, not skip.
stage_gpu-tests() {
  build-gpu/tests/aios_tests --gtest_filter='*Cuda*:*Gpu*:*GPU*:*Nccl*' > "$OUT/gpu_tests.log" 2>&1
  local status=$?
  grep -E "^\[ +(OK|FAILED|SKIPPED) +\]|PASSED|FAILED|Failure|Expected|Which is" "$OUT/gpu_tests.log" | head -40 | tee -a "$summary"
  return $status
}

stage_build-aios() { AIOS_BUILD_TARGET=aios stage_build; }
stage_same-losses() { bench/numerics/same_losses.sh "$BASELINE_BIN" build-gpu/aios; }
stage_baseline() {
  echo "baseline: $(cat .deps/baseline/COMMIT)" | tee -a "$summary"
  (cd .deps/baseline && AIOS_BUILD_DIR=/tmp/aios-baseline-build AIOS_BUILD_TARGET=aios scripts/build.sh) \
    > "$OUT/build-baseline.log" 2>&1 || { grep -E "error" -A3 "$OUT/build-baseline.log" | head -30; return 1; }
}
stage_loss-300() {
  local seed status=0
  for seed in ${LOSS_SEEDS:-1}; do
    bench/numerics/loss_300.sh /tmp/aios-baseline-build/aios build-gpu/aios 300 "$seed" || status=1
  done
  return $status
}
stage_speed() { bench/speed/vs_reference.sh gpt2 16 60; }
stage_profile() { bench/speed/profile.sh gpt2 16; }
stage_profile-amp() { bench/speed/profile.sh gpt2 16 amp-bf16; }
stage_profile-aios() { bench/speed/profile_aios.sh gpt2 16; }
stage_ncu-8bit() { bench/speed/ncu_kernel.sh adamw_8bit all-together adamw-8bit; }
stage_vs-compile() { bench/speed/vs_compile.sh gpt2 16 300; }
stage_vs-compile-quick() {
  bench/speed/vs_compile.sh gpt2 16 100 whole-head,whole-head-eager,everything-on,everything-on-eager,compile
}
# The head's variants (chunked, GPT-2's unpadded vocabulary) are compared at micro-batch 16 only.
stage_vs-compile-32() { bench/speed/vs_compile.sh gpt2 32 40 whole-head,whole-head-eager,everything-on,eager,compile; }
stage_vs-compile-large() {
  bench/speed/vs_compile.sh gpt2-large 8 30 whole-head,whole-head-eager,everything-on,eager,compile
}
stage_memory() { bench/memory/techniques.sh gpt2 16 20; }
stage_memory-large() { bench/memory/techniques.sh gpt2-large 8 12; }
stage_max-batch() { bench/memory/max_batch.sh gpt2-large 512; }
stage_convergence() { bench/memory/convergence.sh gpt2 16 300; }
stage_long-context() { bench/long_context/windows.sh 8192 8 "whole exact-unchecked truncated"; }
stage_long-context-reference() { bench/long_context/reference.sh 3; }
stage_distributed() { bench/distributed/multi_gpu.sh curves scaling oom; }
stage_distributed-tests() {
  build-gpu/tests/aios_tests --gtest_filter='*TwoGpus*:*Nccl*' > "$OUT/distributed_tests.log" 2>&1
  local status=$?
  grep -E "^\[ +(OK|FAILED|SKIPPED) +\]|PASSED|FAILED|Failure|Expected|Which is" "$OUT/distributed_tests.log" | head -40 | tee -a "$summary"
  return $status
}
stage_data() { bench/data/prepare_throughput.sh 100 > "$OUT/prepare_throughput.txt" 2>&1; cat "$OUT/prepare_throughput.txt"; }
stage_data-bpe() {
  bench/data/prepare_throughput.sh 200 .deps/gpt2.tiktoken > "$OUT/prepare_throughput_bpe.txt" 2>&1
  cat "$OUT/prepare_throughput_bpe.txt"
}
stage_sample-speed() { bench/infer/sample_speed.sh 256; }
stage_plan-accuracy() { bench/memory/plan_accuracy.sh ${PLAN_CONFIGS:-}; }

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
