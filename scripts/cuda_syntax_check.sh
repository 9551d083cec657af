#!/usr/bin/env bash
# Compiles (syntax only) the sources that exist only in CUDA builds, on a machine without a GPU:
# the CPU wheel ships LibTorch's CUDA headers; the CUDA Toolkit headers come from nvcc's install
# and NCCL/cuBLAS/cuSOLVER/cuSPARSE headers from NVIDIA's wheels (about 1.2 GB downloaded once to
# $AIOS_CUDA_HEADERS, default /tmp/aios-cuda-headers). Needs a configured build/ (compile flags).
# Catches compile errors before a GPU machine is spent on them; it links and runs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
headers=${AIOS_CUDA_HEADERS:-/tmp/aios-cuda-headers}
cuda=${CUDA_HOME:-/usr/local/cuda-13.0}
if [ ! -f "$headers/x/nvidia/nccl/include/nccl.h" ]; then
  mkdir -p "$headers" && (cd "$headers" &&
    python3 -m pip download --no-deps -q nvidia-nccl-cu13 nvidia-cublas nvidia-cusolver nvidia-cusparse &&
    for w in *.whl; do unzip -o -q "$w" '*/include/*' -d x; done)
fi
mkdir -p "$headers/stubs/c10/cuda/impl"  # generated at LibTorch's build time, absent from the CPU wheel
echo '#define C10_CUDA_BUILD_SHARED_LIBS' > "$headers/stubs/c10/cuda/impl/cuda_cmake_macros.h"
python3 - "$headers" "$cuda" <<'PY'
import json, shlex, subprocess, sys
headers, cuda = sys.argv[1], sys.argv[2]
sources = ["src/distributed/nccl_comm.cpp", "src/optim/adamw_8bit.cpp", "src/memory/mixed_precision.cpp",
           "src/train/device_stats.cpp", "src/memory/attention_backend.cpp", "src/kernels/fused_classifier.cpp",
           "src/kernels/layer_norm.cpp", "src/kernels/attention_heads.cpp",
           "src/kernels/linear.cpp", "src/kernels/bias_gradient.cpp", "src/kernels/linear_gelu.cpp",
           "src/train/step_graph.cpp"]
entry = next(e for e in json.load(open("build/compile_commands.json")) if e["file"].endswith("src/distributed/comm.cpp"))
flags, words, i = [], shlex.split(entry["command"]), 0
while i < len(words):
    w = words[i]
    if w in ("-o", "-Xclang", "-include"): i += 2; continue
    if w == "-c" or w.endswith(".cpp") or "cmake_pch" in w or w.startswith("-Winvalid-pch"): i += 1; continue
    flags.append(w); i += 1
failed = 0
for source in sources:
    r = subprocess.run(flags + ["-fsyntax-only", "-DAIOS_WITH_CUDA=1", f"-I{headers}/stubs", f"-I{cuda}/include",
                                f"-I{headers}/x/nvidia/cu13/include", f"-I{headers}/x/nvidia/nccl/include", source],
                       capture_output=True, text=True)
    print(source, "ok" if r.returncode == 0 else "FAILED")
    if r.returncode: print(r.stderr[:4000]); failed += 1
arches = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in ("80", "86", "89", "90")]
for kernel in ("src/optim/adamw_8bit_cuda.cu", "src/kernels/cross_entropy_cuda.cu", "src/kernels/layer_norm_cuda.cu",
               "src/kernels/attention_heads_cuda.cu", "src/kernels/cuda_images.cu", "src/kernels/bias_gradient_cuda.cu"):
    nvcc = subprocess.run([f"{cuda}/bin/nvcc", "-std=c++20", *arches, "-Isrc", "-c", kernel, "-o", "/dev/null"],
                          capture_output=True, text=True)
    print(kernel, "ok" if nvcc.returncode == 0 else "FAILED")
    if nvcc.returncode: print(nvcc.stderr[:4000]); failed += 1
sys.exit(1 if failed else 0)
PY
