#include "train/train_options.h"

#include "base/error.h"

namespace aios {

void validate(const TrainOptions& o) {
  if (o.dataset_file.empty()) {
    throw Error("--dataset-file", "is required", "a shard set directory written by `aios prepare`");
  }
  if (o.min_lr > o.lr) {
    throw Error("--min-lr", "value " + std::to_string(o.min_lr) + " is above --lr " + std::to_string(o.lr),
                "--min-lr <= --lr");
  }
  if (o.warmup_steps > o.steps) {
    throw Error("--warmup-steps", "value " + std::to_string(o.warmup_steps) + " exceeds --steps " +
                                      std::to_string(o.steps), "--warmup-steps <= --steps");
  }
  const bool explicit_shape = o.n_layer > 0 || o.n_head > 0 || o.n_embd > 0;
  if (explicit_shape && o.n_embd > 0 && o.n_head > 0 && o.n_embd % o.n_head != 0) {
    throw Error("--n-embd", std::to_string(o.n_embd) + " is not divisible by --n-head " + std::to_string(o.n_head),
                "--n-embd a multiple of --n-head");
  }
  if (o.amp_dtype != "auto" && o.amp_dtype != "bf16" && o.amp_dtype != "fp16") {
    throw Error("--amp-dtype", "unknown value '" + o.amp_dtype + "'", "auto, bf16 or fp16");
  }
  if (o.attention != "auto" && o.attention != "flash" && o.attention != "efficient" && o.attention != "cudnn" &&
      o.attention != "math") {
    throw Error("--attention", "unknown value '" + o.attention + "'", "auto, flash, efficient, cudnn or math");
  }
  if (o.chunked_training && o.chunk_size < 1) {
    throw Error("--chunk-size", "is required with --chunked-training", "--chunk-size N (tokens per chunk)");
  }
  if (!o.chunked_training && (o.chunk_size > 0 || o.chunk_memory > 0)) {
    throw Error(o.chunk_size > 0 ? "--chunk-size" : "--chunk-memory", "has no effect without --chunked-training",
                "--chunked-training with it, or leave it out");
  }
  if (o.chunked_training && o.chunk_memory > 0 && o.chunk_mode != "truncated") {
    throw Error("--chunk-memory", "applies to --chunk-mode truncated only (exact mode attends to the whole window)",
                "--chunk-mode truncated, or no --chunk-memory");
  }
  if (o.chunk_mode != "exact" && o.chunk_mode != "truncated") {
    throw Error("--chunk-mode", "unknown value '" + o.chunk_mode + "'", "exact or truncated");
  }
  if (o.pos != "learned" && o.pos != "rope") throw Error("--pos", "unknown value '" + o.pos + "'", "learned or rope");
  if (o.pos == "rope" && !o.export_hf.empty()) {
    throw Error("--export-hf", "a model with rotary positions has no Hugging Face GPT-2 equivalent", "--pos learned");
  }
  if (o.pos == "rope" && !o.init_from.empty()) {
    throw Error("--pos", "rope does not apply to a Hugging Face GPT-2 (--init-from), which has learned positions",
                "--pos learned with --init-from");
  }
  if (!o.profile_file.empty() && o.profile_from + o.profile_steps - 1 > o.steps) {
    throw Error("--profile-from", "steps " + std::to_string(o.profile_from) + " to " +
                                      std::to_string(o.profile_from + o.profile_steps - 1) + " end past --steps " +
                                      std::to_string(o.steps),
                "--profile-from + --profile-steps - 1 <= --steps");
  }
  if (o.device != "auto" && o.device != "cpu" && o.device.rfind("cuda", 0) != 0) {
    throw Error("--device", "unknown value '" + o.device + "'", "auto, cpu, cuda or cuda:N");
  }
}

}  // namespace aios
