#!/usr/bin/env bash
# The whole test suite, the one entry point (CI and the GPU machine alike): installs missing
# dependencies (AIOS_NO_INSTALL=1 skips that, where nothing can be fetched), builds, runs ctest.
# Tests run side by side, each with a share of the cores: uncapped, every test's OpenMP pool takes
# all of them and the suite oversubscribes the machine until tests time out.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${AIOS_NO_INSTALL:-0}" = 1 ] || scripts/install_deps.sh --tests
# The project's Python (scripts/install_deps.sh made it), where there is one.
if [ -x .venv/bin/python3 ]; then export PATH="$PWD/.venv/bin:$PATH"; fi
scripts/build.sh
cores=$(nproc)
jobs=$(( cores < 8 ? cores : 8 ))
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( cores / jobs > 1 ? cores / jobs : 1 ))}
ctest --test-dir "${AIOS_BUILD_DIR:-build}" --output-on-failure --timeout 600 -j "$jobs"
