#!/usr/bin/env bash
# Issue 5's GPU proof on one host with 2 GPUs: NCCL data parallel with ZeRO-1 against one GPU.
#   curves      loss per step of 1 GPU (accumulation 2) and 2 GPUs (accumulation 1) on the same
#               global batch and windows: fp32 (ZeRO-1, fp32 Adam) and everything on (bf16,
#               checkpointing, chunked loss, ZeRO-1 8-bit)
#   scaling     tokens/s and peak memory per rank for gpt2 and gpt2-large, 1 and 2 GPUs, the same
#               micro-batch per GPU; optimizer state per rank from the run header; plain
#               all-reduce (--no-shard-optimizer) beside ZeRO-1
#   oom         an out-of-memory on rank 1 of 2: injected (after the backward, and in the forward
#               while rank 0 is inside its collectives) and real (rank 1 limited to part of its GPU)
#   buckets     gpt2-large on 2 GPUs with 100 and 400 MiB buckets; profile: traces of 1 and 2 GPUs
#   long-context  exact and truncated chunks (64k-token windows, 8,192-token chunks, gpt2 with
#               rotary positions, micro-batch 1): 1 GPU at accumulation 2 against 2 GPUs
#   faults      resume of a 2-GPU checkpoint at step 3 on 2 GPUs and on 1 (re-sharded), against the
#               straight run and a repeat of it; a rank that exits, and one that hangs, at step 3
#   transport   NCCL's own account of its transport (NCCL_DEBUG=INFO); headline: the default rows
# Usage (GPU machine, repository root): bench/distributed/multi_gpu.sh [PART...]  (default: curves scaling oom)
# dist_train reads WINDOW (tokens, default 1024), CKPT_INTERVAL (default 0), HANG_TIMEOUT (seconds,
# default 300) and KEEP=1 (leave the run's checkpoints for a later resume) from the environment.
set -uo pipefail
cd "$(dirname "$0")/../.."
source bench/common.sh
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1  # machine rule
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
shards=$(bench_shards)
parts=("$@"); [ ${#parts[@]} -gt 0 ] || parts=(curves scaling oom)
all_on=(--amp --amp-dtype bf16 --gradient-checkpointing --chunked-loss --use-8bit-optimizer)
fp32=(--no-amp --no-gradient-checkpointing --no-chunked-loss)

# dist_train NAME RANKS MODEL MICRO_BATCH ACCUMULATION STEPS FLAG...: one run, JSONL to $out/dist-NAME.jsonl.
dist_train() {
  local name=$1 ranks=$2 model=$3 batch=$4 accum=$5 steps=$6
  shift 6
  local launch=(env CUDA_VISIBLE_DEVICES=0 "$bin")
  [ "$ranks" -gt 1 ] && launch=(env AIOS_BIN="$bin" launcher/aios-launch --gpus "$ranks" --mpirun-arg -x
                                 --mpirun-arg TORCH_SYMM_MEM_DISABLE_MULTICAST --mpirun-arg -x
                                 --mpirun-arg NVSHMEM_DISABLE_NVLS)
  rm -rf "$work/dist-$name"
  "${launch[@]}" train --model "$model" --vocab-size 50257 --dataset-file "$shards" --window-size "${WINDOW:-1024}" \
    --batch-size "$batch" --gradient-accumulation-steps "$accum" --steps "$steps" --warmup-steps 5 --lr 6e-4 \
    --min-lr 6e-5 --eval-batches 0 --device cuda --checkpoint-interval "${CKPT_INTERVAL:-0}" \
    --hang-timeout "${HANG_TIMEOUT:-300}" --fault-injection "$@" \
    --out-dir "$work/dist-$name" --log-file "$out/dist-$name.jsonl" > "$out/dist-$name.log" 2>&1
  local rc=$?
  grep -E "ranks|precision|out of memory|error|shrink|injected|no progress|resum" "$out/dist-$name.log" | head -8
  echo "$name: exit $rc"
  [ "${KEEP:-0}" = 1 ] || rm -rf "$work/dist-$name"
  return $rc
}

# fault_drill NAME FAULT_VARIABLE: a rank that exits or hangs at step 3 of 6 with a checkpoint every
# step: how long the job takes to end, its exit status and the latest checkpoint left.
fault_drill() {
  local start rc
  start=$(date +%s)
  (export "$2=3" AIOS_FAULT_RANK=1; CKPT_INTERVAL=1 HANG_TIMEOUT=20 KEEP=1 dist_train "$1" 2 gpt2 8 1 6 "${all_on[@]}")
  rc=$?
  echo "$1: exit $rc after $(( $(date +%s) - start )) s; latest checkpoint: $(cat "$work/dist-$1/latest" 2>/dev/null)" |
    tee -a "$out/faults.txt"
  rm -rf "$work/dist-$1"
}

for part in "${parts[@]}"; do
  case $part in
    curves)
      dist_train curve-fp32-1gpu 1 gpt2 8 2 40 "${fp32[@]}"
      dist_train curve-fp32-2gpu 2 gpt2 8 1 40 "${fp32[@]}"
      dist_train curve-all-1gpu 1 gpt2 16 2 100 "${all_on[@]}"
      dist_train curve-all-2gpu 2 gpt2 16 1 100 "${all_on[@]}" ;;
    scaling)
      for gpus in 1 2; do
        dist_train scale-gpt2-${gpus}gpu "$gpus" gpt2 16 1 20 "${all_on[@]}"
        dist_train scale-gpt2-large-${gpus}gpu "$gpus" gpt2-large 8 1 14 "${all_on[@]}"
        dist_train scale-gpt2-large-accum4-${gpus}gpu "$gpus" gpt2-large 8 4 8 "${all_on[@]}"
      done
      dist_train scale-gpt2-large-allreduce-2gpu 2 gpt2-large 8 1 14 "${all_on[@]}" --no-shard-optimizer
      dist_train scale-gpt2-large-fp32adam-1gpu 1 gpt2-large 8 1 8 --amp --amp-dtype bf16 --gradient-checkpointing --chunked-loss
      dist_train scale-gpt2-large-fp32adam-2gpu 2 gpt2-large 8 1 8 --amp --amp-dtype bf16 --gradient-checkpointing --chunked-loss ;;
    buckets)  # the bucket size's effect on 2 GPUs (the default, 25 MiB, is the scaling row)
      for mib in 100 400; do
        dist_train scale-gpt2-large-bucket$mib-2gpu 2 gpt2-large 8 1 14 "${all_on[@]}" --bucket-mb $mib
      done ;;
    profile)  # where a 2-GPU step's extra time goes: rank 0's kernels against one GPU's, steps 6-8
      for gpus in 1 2; do
        dist_train profile-gpt2-large-${gpus}gpu "$gpus" gpt2-large 8 1 8 "${all_on[@]}" \
          --profile-file "$work/trace-${gpus}gpu.json" --profile-from 5 --profile-steps 3
      done
      python3 bench/speed/trace_summary.py 3 "$work/trace-1gpu.json" "$work/trace-2gpu.rank0.json" --labels 1gpu,2gpu-rank0 \
        --top 30 | tee "$out/profile-distributed-gpt2-large.md" | head -60 ;;
    transport)  # which NCCL transport and protocol the two GPUs use (NCCL_DEBUG=INFO, 3 steps)
      NCCL_DEBUG=INFO dist_train nccl-info 2 gpt2 16 1 6 "${all_on[@]}"
      grep -E "NCCL INFO (Channel|Using|comm |P2P|NVLS|Connected|.*via)" "$out/dist-nccl-info.log" | sort | uniq -c \
        | sort -rn | head -20 | tee "$out/nccl-transport.txt" ;;
    headline)  # the scaling rows of the defaults, and the fp32 curve
      for gpus in 1 2; do
        dist_train scale-gpt2-${gpus}gpu "$gpus" gpt2 16 1 20 "${all_on[@]}"
        dist_train scale-gpt2-large-${gpus}gpu "$gpus" gpt2-large 8 1 14 "${all_on[@]}"
      done
      dist_train curve-fp32-1gpu 1 gpt2 8 2 40 "${fp32[@]}"
      dist_train curve-fp32-2gpu 2 gpt2 8 1 40 "${fp32[@]}" ;;
    oom)
      AIOS_FAULT_OOM_AT_STEP=3 AIOS_FAULT_RANK=1 dist_train oom-injected-backward 2 gpt2 16 1 8 "${all_on[@]}"
      AIOS_FAULT_OOM_AT_STEP=3 AIOS_FAULT_RANK=1 AIOS_FAULT_OOM_IN=forward \
        dist_train oom-injected-forward 2 gpt2 16 1 8 "${all_on[@]}"
      dist_train oom-none 2 gpt2 16 1 8 "${all_on[@]}"
      # A real one: rank 1 may use 12 GiB of its GPU; gpt2 without checkpointing at micro-batch 32 needs more.
      AIOS_FAULT_MEMORY_GIB=12 AIOS_FAULT_RANK=1 dist_train oom-real 2 gpt2 32 1 8 \
        --amp --amp-dtype bf16 --no-gradient-checkpointing --chunked-loss --use-8bit-optimizer
      dist_train oom-real-reference 2 gpt2 16 2 8 --amp --amp-dtype bf16 --no-gradient-checkpointing --chunked-loss \
        --use-8bit-optimizer ;;
    faults)  # per-rank checkpoints, re-sharding and failing ranks on GPUs (CPU-tested in DistributedTest)
      CKPT_INTERVAL=3 KEEP=1 dist_train resume-straight 2 gpt2 8 1 6 "${all_on[@]}"
      dist_train resume-repeat 2 gpt2 8 1 6 "${all_on[@]}"
      dist_train resume-resumed 2 gpt2 8 1 6 "${all_on[@]}" --resume "$work/dist-resume-straight/ckpt-00000003.pt"
      dist_train resume-onto-1gpu 1 gpt2 8 2 6 "${all_on[@]}" --resume "$work/dist-resume-straight/ckpt-00000003.pt"
      rm -rf "$work/dist-resume-straight"
      fault_drill fault-exit AIOS_FAULT_EXIT_AT_STEP
      fault_drill fault-hang AIOS_FAULT_HANG_AT_STEP ;;
    long-context)
      lc=(--pos rope --amp --amp-dtype bf16 --no-gradient-checkpointing --chunked-loss --use-8bit-optimizer
          --chunked-training --chunk-size 8192)
      declare -A chunk_mode=([exact]="--chunk-mode exact" [truncated]="--chunk-mode truncated --chunk-memory 8192")
      for mode in exact truncated; do
        # shellcheck disable=SC2086
        WINDOW=65536 dist_train lc-$mode-1gpu 1 gpt2 1 2 10 "${lc[@]}" ${chunk_mode[$mode]}
        # shellcheck disable=SC2086
        WINDOW=65536 dist_train lc-$mode-2gpu 2 gpt2 1 1 10 "${lc[@]}" ${chunk_mode[$mode]}
      done ;;
    *) echo "unknown part $part" >&2; exit 2 ;;
  esac
done
python3 bench/distributed/table.py "$out" | tee "$out/table-distributed.md"
