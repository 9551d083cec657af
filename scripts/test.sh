#!/usr/bin/env bash
# The whole test suite: installs missing dependencies, builds, runs ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
ctest --test-dir "${AIOS_BUILD_DIR:-build}" --output-on-failure --timeout 600 -j "$(nproc)"
