#include "train/train_options.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <utility>

#include "base/error.h"

namespace aios {
namespace {

// A NaN passes every range check (each comparison is false), so finiteness is checked on its own,
// for every real-valued option, whether it came from the command line, a config file or code.
void require_finite(const TrainOptions& o) {
  const std::pair<const char*, double> reals[] = {{"--lr", o.optimizer.lr},
                                                  {"--min-lr", o.optimizer.min_lr},
                                                  {"--weight-decay", o.optimizer.weight_decay},
                                                  {"--beta1", o.optimizer.beta1},
                                                  {"--beta2", o.optimizer.beta2},
                                                  {"--eps", o.optimizer.eps},
                                                  {"--grad-clip", o.optimizer.grad_clip},
                                                  {"--dropout", o.model.dropout},
                                                  {"--bucket-mb", o.parallel.bucket_mb},
                                                  {"--hang-timeout", o.parallel.hang_timeout},
                                                  {"--peak-tflops", o.run.peak_tflops},
                                                  {"--checkpoint-minutes", o.run.checkpoint_minutes}};
  for (const auto& [name, value] : reals) {
    if (!std::isfinite(value))
      throw Error(name, "value " + std::to_string(value) + " is not a finite number", "a finite number");
  }
}

// An option that only matters with another one, given without it, is an error rather than
// silently ignored: the user meant something by it.
void require_needed_companions(const TrainOptions& o) {
  const MemoryOptions& m = o.memory;
  if (m.loss_chunk_tokens > 0 && !m.chunked_loss) {
    throw Error("--loss-chunk-tokens", "has no effect with --no-chunked-loss",
                "--chunked-loss with it, or leave it out");
  }
  if (m.checkpoint_every != 1 && !m.gradient_checkpointing) {
    throw Error("--checkpoint-every", "has no effect with --no-gradient-checkpointing",
                "--gradient-checkpointing with it, or leave it out");
  }
  if (!m.keep_attention_output && !m.gradient_checkpointing) {
    throw Error("--no-keep-attention-output", "has no effect with --no-gradient-checkpointing (nothing is kept)",
                "--gradient-checkpointing with it, or leave it out");
  }
  if (m.amp_dtype != AmpDtype::kAuto && !m.amp) {
    throw Error("--amp-dtype", "'" + to_string(m.amp_dtype) + "' has no effect with --no-amp",
                "--amp with it, or leave it out");
  }
  if (o.run.keep_every > 0 && o.run.keep_last <= 0) {
    throw Error("--keep-every", "has no effect without --keep-last (every checkpoint is kept)",
                "--keep-last K with it, or leave it out");
  }
  if (!m.chunked_training && (m.chunk_size > 0 || m.chunk_memory > 0)) {
    throw Error(m.chunk_size > 0 ? "--chunk-size" : "--chunk-memory", "has no effect without --chunked-training",
                "--chunked-training with it, or leave it out");
  }
  if (m.chunked_training && m.chunk_memory > 0 && m.chunk_mode != ChunkMode::kTruncated) {
    throw Error("--chunk-memory", "applies to --chunk-mode truncated only (exact mode attends to the whole window)",
                "--chunk-mode truncated, or no --chunk-memory");
  }
}

}  // namespace

void validate(const TrainOptions& o) {
  const DataOptions& data = o.data;
  const ModelOptions& model = o.model;
  const MemoryOptions& memory = o.memory;
  const RunOptions& run = o.run;
  require_finite(o);
  require_needed_companions(o);
  if (data.dataset_file.empty()) {
    throw Error("--dataset-file", "is required", "a shard set directory written by `aios prepare`");
  }
  if (o.optimizer.min_lr > o.optimizer.lr) {
    throw Error("--min-lr",
                "value " + std::to_string(o.optimizer.min_lr) + " is above --lr " + std::to_string(o.optimizer.lr),
                "--min-lr <= --lr");
  }
  if (o.optimizer.warmup_steps > run.steps) {
    throw Error("--warmup-steps",
                "value " + std::to_string(o.optimizer.warmup_steps) + " exceeds --steps " + std::to_string(run.steps),
                "--warmup-steps <= --steps");
  }
  if (model.n_embd > 0 && model.n_head > 0 && model.n_embd % model.n_head != 0) {
    throw Error("--n-embd",
                std::to_string(model.n_embd) + " is not divisible by --n-head " + std::to_string(model.n_head),
                "--n-embd a multiple of --n-head");
  }
  if (memory.chunked_training && memory.chunk_size < 1) {
    throw Error("--chunk-size", "is required with --chunked-training", "--chunk-size N (tokens per chunk)");
  }
  if (model.position == PositionEncoding::kRope && !run.export_hf.empty()) {
    throw Error("--export-hf", "a model with rotary positions has no Hugging Face GPT-2 equivalent", "--pos learned");
  }
  if (model.position == PositionEncoding::kRope && !model.init_from.empty()) {
    throw Error("--pos", "rope does not apply to a Hugging Face GPT-2 (--init-from), which has learned positions",
                "--pos learned with --init-from");
  }
  if (!run.profile_file.empty() && run.profile_from + run.profile_steps - 1 > run.steps) {
    throw Error("--profile-from",
                "steps " + std::to_string(run.profile_from) + " to " +
                    std::to_string(run.profile_from + run.profile_steps - 1) + " end past --steps " +
                    std::to_string(run.steps),
                "--profile-from + --profile-steps - 1 <= --steps");
  }
  if (run.device != "auto" && run.device != "cpu" && run.device.rfind("cuda", 0) != 0) {
    throw Error("--device", "unknown value '" + run.device + "'", "auto, cpu, cuda or cuda:N");
  }
}

nlohmann::json to_json(const TrainOptions& o) {
  const DataOptions& d = o.data;
  const ModelOptions& m = o.model;
  const OptimizerOptions& opt = o.optimizer;
  const MemoryOptions& mem = o.memory;
  const ParallelOptions& p = o.parallel;
  const RunOptions& r = o.run;
  return {{"data",
           {{"dataset-file", d.dataset_file},
            {"window-size", d.window_size},
            {"batch-size", d.batch_size},
            {"gradient-accumulation-steps", d.gradient_accumulation_steps},
            {"verify-shards", d.verify_shards}}},
          {"model",
           {{"model", m.preset},
            {"init-from", m.init_from},
            {"n-layer", m.n_layer},
            {"n-head", m.n_head},
            {"n-embd", m.n_embd},
            {"vocab-size", m.vocab_size},
            {"seq-len", m.max_positions},
            {"pos", to_string(m.position)},
            {"model-dtype", to_string(m.dtype)},
            {"dropout", m.dropout}}},
          {"optimizer",
           {{"lr", opt.lr},
            {"min-lr", opt.min_lr},
            {"warmup-steps", opt.warmup_steps},
            {"weight-decay", opt.weight_decay},
            {"decay-embeddings", opt.decay_embeddings},
            {"beta1", opt.beta1},
            {"beta2", opt.beta2},
            {"eps", opt.eps},
            {"grad-clip", opt.grad_clip},
            {"use-8bit-optimizer", opt.use_8bit_optimizer}}},
          {"memory",
           {{"gradient-checkpointing", mem.gradient_checkpointing},
            {"checkpoint-every", mem.checkpoint_every},
            {"keep-attention-output", mem.keep_attention_output},
            {"amp", mem.amp},
            {"amp-dtype", to_string(mem.amp_dtype)},
            {"attention", to_string(mem.attention)},
            {"chunked-loss", mem.chunked_loss},
            {"loss-chunk-tokens", mem.loss_chunk_tokens},
            {"chunked-training", mem.chunked_training},
            {"chunk-size", mem.chunk_size},
            {"chunk-mode", to_string(mem.chunk_mode)},
            {"chunk-memory", mem.chunk_memory}}},
          {"parallel",
           {{"shard-optimizer", p.shard_optimizer}, {"bucket-mb", p.bucket_mb}, {"hang-timeout", p.hang_timeout}}},
          {"run",
           {{"steps", r.steps},
            {"seed", r.seed},
            {"device", r.device},
            {"eval-interval", r.eval_interval},
            {"eval-batches", r.eval_batches},
            {"eval-hellaswag", r.eval_hellaswag},
            {"sample-every", r.sample_every},
            {"sample-prompt", r.sample_prompt},
            {"sample-tokens", r.sample_tokens},
            {"out-dir", r.out_dir},
            {"checkpoint-interval", r.checkpoint_interval},
            {"checkpoint-minutes", r.checkpoint_minutes},
            {"keep-last", r.keep_last},
            {"keep-every", r.keep_every},
            {"resume", r.resume},
            {"overwrite", r.overwrite},
            {"log-file", r.log_file},
            {"log-every", r.log_every},
            {"export-hf", r.export_hf},
            {"peak-tflops", r.peak_tflops},
            {"profile-file", r.profile_file},
            {"profile-from", r.profile_from},
            {"profile-steps", r.profile_steps},
            {"cuda-graphs", r.cuda_graphs},
            {"fault-injection", r.fault_injection}}}};
}

}  // namespace aios
