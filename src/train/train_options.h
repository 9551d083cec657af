// Every option of `aios train`, declared once. The CLI binds each field to one flag (the seed's
// names where it had one) and the same name is the TOML key in --config files.
#pragma once

#include <cstdint>
#include <string>

namespace aios {

struct TrainOptions {
  // Data
  std::string dataset_file;         // --dataset-file: a shard set written by `aios prepare`
  std::int64_t window_size = 256;   // --window-size: tokens of context per sample
  bool verify_shards = true;        // --verify-shards: check shard CRCs as they are opened

  // Model
  std::string model = "tiny";       // --model: tiny | gpt2 | gpt2-medium | gpt2-large | gpt2-xl
  std::string init_from;            // --init-from: Hugging Face GPT-2 directory
  std::int64_t n_layer = 0;         // 0 = the preset's value
  std::int64_t n_head = 0;
  std::int64_t n_embd = 0;
  std::int64_t vocab_size = 0;      // 0 = the dataset's vocabulary
  std::int64_t seq_len = 0;         // learned positions; 0 = the preset's (1024)
  std::string model_dtype = "float32";  // float32 | float64 (float64: reference checks on the CPU)
  std::string pos = "learned";      // --pos: learned (GPT-2's table) | rope (rotary, any window)
  double dropout = 0.0;

  // Batch and schedule
  std::int64_t batch_size = 8;                   // --batch-size: micro-batch per rank
  std::int64_t gradient_accumulation_steps = 1;  // micro-batches per optimizer step
  std::int64_t steps = 100;                      // optimizer steps
  double lr = 6e-4;
  double min_lr = 6e-5;
  std::int64_t warmup_steps = 10;
  double weight_decay = 0.1;
  bool decay_embeddings = false;    // apply weight decay to wte/wpe too
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double grad_clip = 1.0;           // global-norm clipping; 0 disables

  // Memory techniques (seed names where the seed had one)
  bool gradient_checkpointing = true;
  std::int64_t checkpoint_every = 1;  // checkpoint every K-th block (1 = all)
  bool amp = true;
  std::string amp_dtype = "auto";   // auto | bf16 | fp16
  bool use_8bit_optimizer = false;  // blockwise 8-bit AdamW moments
  std::string attention = "auto";   // auto | flash | efficient | cudnn | math

  // Long windows in chunks (seed: use_chunked_training, chunk_size)
  bool chunked_training = false;
  std::int64_t chunk_size = 0;      // tokens per chunk (required with --chunked-training)
  std::string chunk_mode = "exact"; // exact (whole-window gradients) | truncated (Transformer-XL)
  std::int64_t chunk_memory = 0;    // truncated: earlier tokens each chunk sees; 0 = the whole window
  bool chunked_loss = true;             // LM head + loss over chunks of tokens
  std::int64_t loss_chunk_tokens = 0;   // 0 = sized to the vocabulary (~256 MiB of fp32 logits)

  // Distributed (ranks launched by mpirun; ignored for one process)
  bool shard_optimizer = true;      // ZeRO-1: optimizer state sharded across ranks
  double bucket_mb = 100.0;         // gradient communication bucket size (docs/distributed.md: measured)
  double hang_timeout = 1800;       // seconds without progress before a rank ends the job; 0 = never

  // Evaluation, checkpoints, logs
  std::int64_t eval_interval = 50;  // steps between validation passes; 0 = only at the end
  std::int64_t eval_batches = 8;
  std::string out_dir = "runs/default";  // checkpoints go here
  std::int64_t checkpoint_interval = 0;  // steps between checkpoints; 0 = only at the end
  std::string resume;               // checkpoint path or "latest"
  std::string log_file;             // JSONL metrics; empty = none
  std::string export_hf;            // write the final model here in Hugging Face GPT-2 format
  std::string device = "auto";      // auto | cpu | cuda | cuda:N
  std::uint64_t seed = 1337;
  double peak_tflops = 0;           // device peak for MFU; 0 = the documented default per device

  // Profiling (Chrome trace of chosen steps; rank N of several writes <stem>.rankN<ext>)
  std::string profile_file;         // empty = no profiling
  std::int64_t profile_from = 5;    // first profiled step (1-based), past warm-up and allocator growth
  std::int64_t profile_steps = 3;   // steps in the trace
};

// Cross-option checks that a single option's range cannot express. Throws aios::Error naming
// the option(s) and the accepted values.
void validate(const TrainOptions& options);

}  // namespace aios
