#!/usr/bin/env bash
# Installs what aios needs to build and run on a fresh Debian/Ubuntu machine: Debian's packages
# and LibTorch from PyTorch's CPU wheel; with --tests also what the tests compare against or run
# under (a browser, a local Slurm, Python references, tiktoken's rank files). Installs only what
# is missing, so it is a no-op where everything is present (the GPU image, a developer's machine).
# Usage: scripts/install_deps.sh [--tests]
set -euo pipefail
cd "$(dirname "$0")/.."
tests=0; [ "${1:-}" = --tests ] && tests=1
packages=(cmake ninja-build g++ libopenmpi-dev openmpi-bin libhdf5-dev libcli11-dev libgtest-dev
          libgmock-dev nlohmann-json3-dev libsentencepiece-dev libpcre2-dev zlib1g-dev python3-pip python3-venv)
[ $tests = 1 ] && packages+=(clang-format chromium slurm-wlm munge)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install_deps: installing ${missing[*]}"
  sudo_cmd=(); [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Python packages go into the project's virtual environment (.venv): a stock Debian or Ubuntu
# Python is externally managed (PEP 668) and takes no pip installs. The environment sees the
# system's packages, so a torch already installed there (a developer's machine, the GPU image) is
# used as it is. scripts/build.sh, test.sh and demo.sh put .venv/bin first on PATH.
[ -x .venv/bin/python3 ] || python3 -m venv --system-site-packages .venv
py=.venv/bin/python3
if ! $py -c 'import torch' >/dev/null 2>&1; then
  # The CPU build, asked for by name: plain `torch` from PyPI is a CUDA build of several GB.
  echo "install_deps: installing torch==2.13.0+cpu into .venv"
  $py -m pip install -q "torch==2.13.0+cpu" ||
    $py -m pip install -q "torch==2.13.0+cpu" --index-url https://download.pytorch.org/whl/cpu
fi
[ $tests = 1 ] || exit 0
# The reference implementations tests compare against (tokenizers, tiktoken, and transformers for
# exports), and tiktoken's rank files.
if ! $py -c 'import tokenizers, tiktoken, transformers' >/dev/null 2>&1; then
  echo "install_deps: installing tokenizers, tiktoken and transformers into .venv (test references)"
  $py -m pip install -q tokenizers==0.23.3 tiktoken==0.14.0 transformers==5.24.0
fi
PATH="$PWD/.venv/bin:$PATH" scripts/fetch_reference_tokenizers.sh
