#!/usr/bin/env bash
# Generation speed of `aios sample` for GPT-2 124M (random weights: speed does not depend on them)
# at batch 1 and 16, with and without the key/value cache, against plain PyTorch generating the
# same way (bench/infer/reference_generate.py) in the same call. A 15-token prompt, 256 new tokens
# per sample, top-k 50 at temperature 0.8, bf16 autocast. Needs GPT-2's tiktoken ranks at
# .deps/gpt2.tiktoken (scripts/fetch_reference_tokenizers.sh; carried to the GPU machine).
# Usage: bench/infer/sample_speed.sh [NEW_TOKENS=256]
set -uo pipefail
cd "$(dirname "$0")/../.."
source bench/common.sh
new=${1:-256}
init=$(bench_init gpt2)
ranks=.deps/gpt2.tiktoken
# 15 tokens of GPT-2 BPE.
prompt="In a distant valley, the river carried stories of the old town down to"
table=$out/sample_speed.jsonl
: > "$table"
for batch in 1 16; do
  for cache in on off; do
    flags=(); [ $cache = off ] && flags=(--no-cache)
    # The first call warms the GPU up; the second is measured (its own line of tokens/s).
    "$bin" sample "$init" --device cuda --tokenizer "$ranks" --prompt "$prompt" --max-new-tokens 16 --num-samples "$batch" \
      --temperature 0.8 --top-k 50 --ignore-end-of-text "${flags[@]}" > /dev/null 2>&1
    log=$out/aios-sample-b$batch-cache-$cache.log
    "$bin" sample "$init" --device cuda --tokenizer "$ranks" --prompt "$prompt" --max-new-tokens "$new" \
      --num-samples "$batch" --temperature 0.8 --top-k 50 --ignore-end-of-text "${flags[@]}" > "$log" 2>&1
    grep -a "^aios" "$log"
    rate=$(grep -a "aios sample:" "$log" | sed -E 's/.*then ([0-9.]+) tokens\/s.*/\1/')
    first=$(grep -a "aios sample:" "$log" | sed -E 's/.*first token ([0-9.]+) ms.*/\1/')
    echo "{\"impl\": \"aios\", \"batch\": $batch, \"cache\": $([ $cache = on ] && echo true || echo false), \"first_token_ms\": $first, \"tokens_per_s\": $rate}" >> "$table"
    python3 bench/infer/reference_generate.py --init "$init" --batch "$batch" --prompt-tokens 15 \
      --new-tokens "$new" "${flags[@]}" >> "$table"
  done
done
cat "$table"
