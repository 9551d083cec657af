// Every option of `aios train`, declared once and grouped by the component it configures. The CLI
// binds each field to one flag (the original Python tool's names where it had one); the flag's
// long name is also its key in --config files. to_json() is the one serialisation: the run
// header of the metrics log and the tests read it.
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "base/enum_names.h"
#include "memory/attention_backend.h"
#include "memory/chunked_training.h"
#include "memory/mixed_precision.h"
#include "model/gpt_config.h"

namespace aios {

// --model-dtype: the parameters' type (float64 is for reference checks on the CPU).
enum class ModelDtype { kFloat32, kFloat64 };
constexpr std::array<EnumName<ModelDtype>, 2> enum_names(ModelDtype) {
  return {{{ModelDtype::kFloat32, "float32"}, {ModelDtype::kFloat64, "float64"}}};
}

struct DataOptions {
  std::string dataset_file;                      // --dataset-file: a shard set written by `aios prepare`
  std::int64_t window_size = 256;                // --window-size: tokens of context per sample
  std::int64_t batch_size = 8;                   // --batch-size: windows per micro-batch, per rank
  std::int64_t gradient_accumulation_steps = 1;  // micro-batches per optimizer step
  bool verify_shards = true;                     // check shard CRCs as they are opened
};

struct ModelOptions {
  std::string preset = "tiny";  // --model: tiny | gpt2 | gpt2-medium | gpt2-large | gpt2-xl
  std::string init_from;        // --init-from: a Hugging Face GPT-2 directory
  std::int64_t n_layer = 0;     // 0 = the preset's value
  std::int64_t n_head = 0;
  std::int64_t n_embd = 0;
  std::int64_t vocab_size = 0;     // 0 = the dataset's vocabulary
  std::int64_t max_positions = 0;  // --seq-len: rows of the learned position table; 0 = the preset's
  PositionEncoding position = PositionEncoding::kLearned;  // --pos
  ModelDtype dtype = ModelDtype::kFloat32;                 // --model-dtype
  double dropout = 0.0;
};

struct OptimizerOptions {
  double lr = 6e-4;
  double min_lr = 6e-5;
  std::int64_t warmup_steps = 10;
  double weight_decay = 0.1;
  bool decay_embeddings = false;  // weight decay on wte/wpe too
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double grad_clip = 1.0;           // global-norm clipping; 0 disables
  bool use_8bit_optimizer = false;  // blockwise 8-bit AdamW moments
};

struct MemoryOptions {
  bool gradient_checkpointing = true;
  std::int64_t checkpoint_every = 1;  // checkpoint every K-th block (1 = all)
  bool keep_attention_output = true;  // checkpointed blocks keep their attention output (memory/kept_attention.h)
  bool amp = true;
  AmpDtype amp_dtype = AmpDtype::kAuto;
  AttentionBackend attention = AttentionBackend::kAuto;
  bool chunked_loss = true;            // LM head + loss over chunks of tokens
  std::int64_t loss_chunk_tokens = 0;  // 0 = sized to the vocabulary (~256 MiB of fp32 logits)
  // Long windows in chunks (docs/long-context.md)
  bool chunked_training = false;
  std::int64_t chunk_size = 0;  // tokens per chunk (required with --chunked-training)
  ChunkMode chunk_mode = ChunkMode::kExact;
  std::int64_t chunk_memory = 0;  // truncated: earlier tokens each chunk sees; 0 = the whole window
};

struct ParallelOptions {        // ranks launched by mpirun; ignored by one process
  bool shard_optimizer = true;  // ZeRO-1: optimizer state sharded across ranks
  double bucket_mb = 100.0;     // gradient communication bucket size (docs/distributed.md)
  double hang_timeout = 1800;   // seconds without progress before a rank ends the job; 0 = never
};

struct RunOptions {
  std::int64_t steps = 100;         // optimizer steps
  std::uint64_t seed = 1337;        // initialization and data order
  std::string device = "auto";      // auto | cpu | cuda | cuda:N
  std::int64_t eval_interval = 50;  // steps between validation passes; 0 = only at the end
  std::int64_t eval_batches = 8;
  std::string eval_hellaswag;            // a HellaSwag-format file scored at each validation pass (rank 0)
  std::int64_t sample_every = 0;         // steps between samples printed and logged; 0 = none
  std::string sample_prompt;             // text the samples continue ("": after an end-of-text token)
  std::int64_t sample_tokens = 48;       // new tokens per sample
  std::string out_dir;                   // checkpoints go here; "": runs/<UTC date-time of the start>, one per run
  std::int64_t checkpoint_interval = 0;  // steps between checkpoints; 0 = only at the end
  double checkpoint_minutes = 30;        // and at least this often (minutes); 0 = no timed checkpoints
  std::int64_t keep_last = 0;            // keep the newest K checkpoints (and latest's); 0 = keep all
  std::int64_t keep_every = 0;           // with keep_last: also keep those whose step is a multiple of M
  std::string resume;                    // a checkpoint path, "latest" or "auto"
  bool overwrite = false;                // start afresh in an --out-dir that holds checkpoints
  std::string log_file;                  // JSONL metrics; empty = none
  std::int64_t log_every = 0;            // off a terminal: a progress line every N steps (0 = 1/20 of the run) or 30 s
  std::string export_hf;                 // write the final model here in Hugging Face GPT-2 format
  double peak_tflops = 0;                // device peak for MFU; 0 = the built-in table
  // Profiling: a Chrome trace of chosen steps; rank N of several writes <stem>.rankN<ext>
  std::string profile_file;       // empty = no profiling
  std::int64_t profile_from = 5;  // first profiled step (1-based), past warm-up and allocator growth
  std::int64_t profile_steps = 3;
  // Speed: capture the step as a CUDA graph and replay it (train/step_graph.h); where the run
  // cannot, it stays eager and the header says why.
  bool cuda_graphs = true;
  // --fault-injection (hidden): read the AIOS_FAULT_* variables (train/fault_injection.h). A test
  // and drill aid; without it a stray variable cannot hang, kill or cap a real run.
  bool fault_injection = false;
};

struct TrainOptions {
  DataOptions data;
  ModelOptions model;
  OptimizerOptions optimizer;
  MemoryOptions memory;
  ParallelOptions parallel;
  RunOptions run;
};

// Cross-option checks that a single option's range cannot express. Throws aios::Error naming
// the option(s) and the accepted values.
void validate(const TrainOptions& options);

// {"data": {...}, "model": {...}, ...}: every field under its flag's name, enums by their names.
nlohmann::json to_json(const TrainOptions& options);

}  // namespace aios
