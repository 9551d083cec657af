#!/usr/bin/env bash
# The source tree of an earlier commit in .deps/baseline (carried to the GPU machine with .deps),
# for the stages that compare this build with it (bench/run.sh baseline loss-300).
# Usage (here, repository root): bench/numerics/baseline_tree.sh COMMIT
set -euo pipefail
cd "$(dirname "$0")/../.."
commit=$(git rev-parse --short "${1:?usage: bench/numerics/baseline_tree.sh COMMIT}")
# Replaces only a tree this script wrote (it leaves COMMIT beside the sources), never other files.
if [ -e .deps/baseline ] && [ ! -f .deps/baseline/COMMIT ]; then
  echo "bench: .deps/baseline exists and was not written by this script; move it away first" >&2
  exit 1
fi
rm -rf .deps/baseline
mkdir -p .deps/baseline
git archive "$commit" | tar -x -C .deps/baseline
echo "$commit" > .deps/baseline/COMMIT
echo "bench: .deps/baseline holds the tree of $commit"
