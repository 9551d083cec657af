#!/usr/bin/env bash
# Measures `aios prepare` throughput with the byte tokenizer on a generated text corpus.
# Usage: bench/data/prepare_throughput.sh [MEGABYTES=100]   (needs a built build/aios)
set -euo pipefail
cd "$(dirname "$0")/../.."
mb=${1:-100}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 scripts/make_demo_corpus.py "$work/corpus" --bytes $((mb * 1000 * 1000)) --files 16 --seed 1
sync
for run in 1 2 3; do
  build/aios prepare "$work/corpus" --output "$work/shards" --overwrite | sed "s/^/run $run: /"
done
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
