#!/usr/bin/env bash
# Installs what aios needs to build and test on a fresh Debian/Ubuntu machine: Debian's packages
# and LibTorch from PyTorch's CPU wheel. Installs only what is missing, so it is a no-op where
# everything is present (the GPU image, a developer's machine).
set -euo pipefail
packages=(cmake ninja-build g++ libopenmpi-dev openmpi-bin libhdf5-dev libcli11-dev libgtest-dev
          libgmock-dev nlohmann-json3-dev libsentencepiece-dev libpcre2-dev zlib1g-dev python3-pip clang-format)
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
# pip into the system Python: Debian's marks itself externally managed (PEP 668), so where a plain
# install is refused for that, the same install is repeated past the mark.
pip_install() {
  local log; log=$(mktemp)
  if ! python3 -m pip install -q "$@" 2>"$log"; then
    if grep -q externally-managed "$log"; then
      python3 -m pip install -q --break-system-packages "$@"
    else
      cat "$log" >&2; rm -f "$log"; return 1
    fi
  fi
  rm -f "$log"
}
if ! python3 -c 'import torch' >/dev/null 2>&1; then
  # The CPU wheel: plain `torch` would pull a CUDA build of several GB.
  echo "install_deps: installing torch==2.13.0 (CPU wheel)"
  pip_install torch==2.13.0
fi
# The reference implementations tests compare against (tokenizers, tiktoken, and transformers for
# exports), and tiktoken's rank files.
if ! python3 -c 'import tokenizers, tiktoken, transformers' >/dev/null 2>&1; then
  echo "install_deps: installing tokenizers, tiktoken and transformers (test references)"
  pip_install tokenizers==0.23.3 tiktoken==0.14.0 transformers==5.24.0
fi
"$(dirname "$0")/fetch_reference_tokenizers.sh"
