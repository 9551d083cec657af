#!/usr/bin/env bash
# On the GPU machine: builds against the image's CUDA LibTorch and runs the whole test suite
# (GPU tests included). With AIOS_GPU_BENCH=1 it then runs every benchmark of docs/benchmarks.md
# (more than one device call's 10 minutes: run the bench/ scripts one by one instead).
# Logs go to $OUT (or ./gpu-out).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}; mkdir -p "$out"
export AIOS_BUILD_DIR=build-gpu
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Keep NVLink multicast off (the device README: it can take a shared host's GPUs down).
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
{
  date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
  nvcc --version | tail -1; cmake --version | head -1
} > "$out/machine.txt" 2>&1
status=0
scripts/build.sh > "$out/build.log" 2>&1 || { echo "build failed"; grep -E "error|Error" -A3 "$out/build.log" | head -60; exit 1; }
grep -E "aios: LibTorch" "$out/build.log" || true
build-gpu/aios --version | tee "$out/version.txt"
ctest --test-dir build-gpu --output-on-failure --timeout 600 -j 8 > "$out/ctest.log" 2>&1 || status=1
grep -E "tests passed|tests failed|Failed|Skipped" "$out/ctest.log" | head -20
if [ "${AIOS_GPU_BENCH:-0}" = 1 ]; then
  ln -sfn build-gpu build 2>/dev/null || true
  bench/prepare_throughput.sh 100 > "$out/prepare_throughput.txt" 2>&1 || status=1
  bench/gpu_trainer_bench.sh gpt2 16 100 || status=1
  bench/gpu_techniques_bench.sh gpt2 16 20 || status=1
  bench/gpu_techniques_bench.sh gpt2-large 8 12 || status=1
  bench/gpu_max_batch.sh gpt2-large 512 || status=1
  bench/gpu_convergence.sh gpt2 16 300 || status=1
  bench/gpu_long_context_bench.sh 2048 4 || status=1
fi
exit $status
