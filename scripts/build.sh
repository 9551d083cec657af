#!/usr/bin/env bash
# Configures and builds aios into build/ (or $AIOS_BUILD_DIR) against the LibTorch of the
# python3 on PATH. Extra arguments go to cmake's configure step; AIOS_BUILD_TARGET=aios builds the
# program alone (no tests).
set -euo pipefail
cd "$(dirname "$0")/.."
# The project's Python (scripts/install_deps.sh made it), where there is one.
if [ -x .venv/bin/python3 ]; then export PATH="$PWD/.venv/bin:$PATH"; fi
build_dir=${AIOS_BUILD_DIR:-build}
torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
if [ ! -f "$build_dir/build.ninja" ]; then
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=${AIOS_BUILD_TYPE:-RelWithDebInfo} \
    -DCMAKE_PREFIX_PATH="$torch_prefix" "${launcher[@]}" "$@"
fi
cmake --build "$build_dir" --parallel "${AIOS_BUILD_JOBS:-$(nproc)}" ${AIOS_BUILD_TARGET:+--target "$AIOS_BUILD_TARGET"}
