#!/usr/bin/env bash
# Measures `aios prepare` throughput on a generated text corpus, on one core and on every core,
# with the byte tokenizer or the one named (a tokenizer file or directory, e.g. GPT-2's ranks).
# Usage: bench/data/prepare_throughput.sh [MEGABYTES=100] [TOKENIZER=byte]   (needs a built aios)
set -euo pipefail
cd "$(dirname "$0")/../.."
mb=${1:-100}
tokenizer=${2:-byte}
bin=${AIOS_BUILD_DIR:-build}/aios
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 scripts/make_demo_corpus.py "$work/corpus" --bytes $((mb * 1000 * 1000)) --files 16 --seed 1
sync
for threads in 1 "$(nproc)"; do
  for run in 1 2; do
    "$bin" prepare "$work/corpus" --tokenizer "$tokenizer" --threads "$threads" --output "$work/shards" --overwrite |
      sed "s/^/$threads thread(s), run $run: /"
  done
done
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
