#!/usr/bin/env bash
# aios against the same model in PyTorch, eager and under torch.compile, in one run on one GPU.
# GPT-2 shapes with the vocabulary padded to 50304, window 1024, bf16 autocast; the reference
# (bench/reference_trainer.py) has a tied head, tanh GELU and fused AdamW. All rows read the same
# windows of the same shards from the same initial weights. Rows:
#   aios whole head     --amp bf16, no checkpointing, the logits of a micro-batch at once
#   aios whole head, eager   the same with --no-cuda-graphs: every kernel launched by the host
#   aios chunked head   --amp bf16, no checkpointing, the chunked loss (aios's default head)
#   aios everything on  configs/techniques/all-together.toml (checkpointing, chunked loss, 8-bit AdamW)
#   aios whole head, vocabulary 50257   GPT-2's own vocabulary, unpadded (aios pads the head's matmuls)
#   PyTorch eager, PyTorch torch.compile
# Prints one table (tokens/s, peak GiB, MFU, ratio to torch.compile) and keeps it in $OUT.
# Usage (GPU machine, repository root): bench/speed/vs_compile.sh [MODEL=gpt2] [MICRO_BATCH=16] [STEPS=30] [ROWS]
# ROWS: a comma-separated subset of whole-head,whole-head-eager,chunked-head,everything-on,
# everything-on-eager,whole-head-v50257,eager,compile (default all). Every aios row but the two
# -eager ones captures its step as a CUDA graph after two eager steps (aios's default).
set -uo pipefail
cd "$(dirname "$0")/../.."
model=${1:-gpt2}; batch=${2:-16}; steps=${3:-30}
rows=${4:-whole-head,whole-head-eager,chunked-head,everything-on,everything-on-eager,whole-head-v50257,eager,compile}
has() { [[ ",$rows," == *",$1,"* ]]; }
source bench/common.sh
shards=$(bench_shards 40000000)
init=$(bench_init "$model" 50304)
common=(--dataset-file "$shards" --window-size 1024 --batch-size "$batch" --steps "$steps" --warmup-steps 5
        --lr 6e-4 --min-lr 6e-5)
tag=$model-mb$batch
runs=/dev/shm/aios-vs-compile  # the final checkpoint is written to memory, not timed, and removed
gpu_clocks_start "$tag"
trap gpu_clocks_stop EXIT
aios_row() {  # NAME [--init DIR] FLAGS...
  local name=$1 row_init=$init; shift
  if [ "$1" = --init ]; then row_init=$2; shift 2; fi
  "$bin" train --init-from "$row_init" "${common[@]}" "$@" --eval-batches 0 --device cuda --out-dir "$runs/$name" \
    --log-file "$out/aios-$tag-$name.jsonl" 2>&1 | grep -E "precision|rror|CUDA graph" >&2
  rm -rf "$runs/$name"
}
declare -A label=([whole-head]="aios, whole head" [whole-head-eager]="aios, whole head, no CUDA graph"
                   [chunked-head]="aios, chunked head" [everything-on]="aios, everything on"
                   [everything-on-eager]="aios, everything on, no CUDA graph"
                   [whole-head-v50257]="aios, whole head, vocabulary 50257")
has whole-head && aios_row whole-head --amp --amp-dtype bf16 --no-gradient-checkpointing --no-chunked-loss
has whole-head-eager && aios_row whole-head-eager --amp --amp-dtype bf16 --no-gradient-checkpointing \
  --no-chunked-loss --no-cuda-graphs
has chunked-head && aios_row chunked-head --amp --amp-dtype bf16 --no-gradient-checkpointing --chunked-loss
has everything-on && aios_row everything-on --config configs/techniques/all-together.toml
has everything-on-eager && aios_row everything-on-eager --config configs/techniques/all-together.toml \
  --no-cuda-graphs
# GPT-2's own vocabulary (50,257, unpadded weights): aios pads the classifier's matmuls itself.
if has whole-head-v50257; then
  init_unpadded=$(bench_init "$model")
  aios_row whole-head-v50257 --init "$init_unpadded" --amp --amp-dtype bf16 --no-gradient-checkpointing \
    --no-chunked-loss
fi
has eager && python3 bench/reference_trainer.py train --init "$init" "${common[@]}" --amp \
  --log-file "$out/eager-$tag.jsonl" >&2
has compile && python3 bench/reference_trainer.py train --init "$init" "${common[@]}" --amp --compile \
  --log-file "$out/compile-$tag.jsonl" >&2
table=()
for row in whole-head whole-head-eager chunked-head everything-on everything-on-eager whole-head-v50257; do
  has $row && table+=("${label[$row]}=$out/aios-$tag-$row.jsonl")
done
has eager && table+=("PyTorch eager=$out/eager-$tag.jsonl")
has compile && table+=("PyTorch torch.compile=$out/compile-$tag.jsonl")
python3 bench/speed/vs_compile_table.py "$model, micro-batch $batch" "${table[@]}" | tee "$out/vs-compile-$tag.md"
