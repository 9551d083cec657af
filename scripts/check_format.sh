#!/usr/bin/env bash
# Fails when a C++ source under src/ or tests/ differs from what clang-format makes of it
# (.clang-format at the root). scripts/check_format.sh --fix rewrites them instead.
# Exit 77 (a skip in ctest) where clang-format is not installed; scripts/install_deps.sh installs it.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "clang-format not installed: format not checked"; exit 77; }
mapfile -t files < <(git ls-files 'src/*.cpp' 'src/*.h' 'src/*.cu' 'tests/*.cpp' 'tests/*.h' 2>/dev/null ||
                     find src tests -name '*.cpp' -o -name '*.h' -o -name '*.cu')
if [ "${1:-}" = --fix ]; then
  clang-format -i "${files[@]}"
  exit 0
fi
if ! clang-format --dry-run --Werror "${files[@]}"; then
  echo "check_format: the lines above differ from .clang-format; scripts/check_format.sh --fix rewrites them"
  exit 1
fi
echo "check_format: ${#files[@]} files formatted as .clang-format says"
