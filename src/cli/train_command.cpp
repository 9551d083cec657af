#include "cli/train_command.h"

#include <cstdio>
#include <limits>
#include <memory>

#include "base/error.h"
#include "cli/app.h"
#include "train/trainer.h"

namespace aios::cli {
namespace {
constexpr auto kMaxInt = std::numeric_limits<std::int64_t>::max();
}  // namespace

void bind_train_options(CLI::App& cmd, TrainOptions& o) {
  const auto positive = CLI::Range(std::int64_t{1}, kMaxInt);
  const auto non_negative = CLI::Range(std::int64_t{0}, kMaxInt);

  cmd.add_option("--dataset-file", o.dataset_file, "Shard set written by `aios prepare` (directory or manifest.json)")
      ->group("Data");
  cmd.add_option("--window-size", o.window_size, "Tokens of context per training sample")
      ->capture_default_str()->check(positive)->group("Data");
  cmd.add_flag("--verify-shards,!--no-verify-shards", o.verify_shards,
               "Check each shard's checksum the first time it is read")->group("Data");

  cmd.add_option("--model", o.model, "Model preset")
      ->capture_default_str()->check(CLI::IsMember({"tiny", "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"}))
      ->group("Model");
  cmd.add_option("--init-from", o.init_from, "Hugging Face GPT-2 directory (config.json + model.safetensors)")
      ->check(CLI::ExistingDirectory)->group("Model");
  cmd.add_option("--n-layer", o.n_layer, "Override the preset's layer count")->check(positive)->group("Model");
  cmd.add_option("--n-head", o.n_head, "Override the preset's head count")->check(positive)->group("Model");
  cmd.add_option("--n-embd", o.n_embd, "Override the preset's width")->check(positive)->group("Model");
  cmd.add_option("--vocab-size", o.vocab_size, "Model vocabulary (default: the dataset's)")
      ->check(positive)->group("Model");
  cmd.add_option("--seq-len", o.seq_len, "Learned positions: the longest window the model takes (default: the preset's)")
      ->check(positive)->group("Model");
  cmd.add_option("--model-dtype", o.model_dtype, "Parameter type (float64 is for reference checks on the CPU)")
      ->capture_default_str()->check(CLI::IsMember({"float32", "float64"}))->group("Model");
  cmd.add_option("--pos", o.pos, "Positions: learned (GPT-2's table, windows up to --seq-len) or rope (rotary)")
      ->capture_default_str()->check(CLI::IsMember({"learned", "rope"}))->group("Model");
  cmd.add_option("--dropout", o.dropout, "Dropout probability")->capture_default_str()
      ->check(CLI::Range(0.0, 0.9))->group("Model");

  cmd.add_option("--batch-size", o.batch_size, "Micro-batch size per rank")
      ->capture_default_str()->check(positive)->group("Optimization");
  cmd.add_option("--gradient-accumulation-steps", o.gradient_accumulation_steps,
                 "Micro-batches per optimizer step")->capture_default_str()->check(positive)->group("Optimization");
  cmd.add_option("--steps", o.steps, "Optimizer steps to train")->capture_default_str()->check(positive)
      ->group("Optimization");
  cmd.add_option("--lr", o.lr, "Peak learning rate")->capture_default_str()->check(CLI::Range(0.0, 10.0))
      ->group("Optimization");
  cmd.add_option("--min-lr", o.min_lr, "Learning rate at the end of the cosine decay")->capture_default_str()
      ->check(CLI::Range(0.0, 10.0))->group("Optimization");
  cmd.add_option("--warmup-steps", o.warmup_steps, "Linear warmup steps")->capture_default_str()
      ->check(non_negative)->group("Optimization");
  cmd.add_option("--weight-decay", o.weight_decay, "AdamW decoupled weight decay (matrices only)")
      ->capture_default_str()->check(CLI::Range(0.0, 10.0))->group("Optimization");
  cmd.add_flag("--decay-embeddings", o.decay_embeddings, "Apply weight decay to the embeddings too")
      ->group("Optimization");
  cmd.add_option("--beta1", o.beta1, "AdamW beta1")->capture_default_str()->check(CLI::Range(0.0, 0.999999))
      ->group("Optimization");
  cmd.add_option("--beta2", o.beta2, "AdamW beta2")->capture_default_str()->check(CLI::Range(0.0, 0.999999))
      ->group("Optimization");
  cmd.add_option("--eps", o.eps, "AdamW epsilon")->capture_default_str()->check(CLI::Range(0.0, 1.0))
      ->group("Optimization");
  cmd.add_option("--grad-clip", o.grad_clip, "Clip gradients to this global norm (0 = off)")
      ->capture_default_str()->check(CLI::Range(0.0, 1e6))->group("Optimization");

  cmd.add_flag("--gradient-checkpointing,!--no-gradient-checkpointing", o.gradient_checkpointing,
               "Recompute each block's activations in backward")->group("Memory");
  cmd.add_option("--checkpoint-every", o.checkpoint_every,
                 "With --gradient-checkpointing: checkpoint every K-th block (1 = all)")
      ->capture_default_str()->check(positive)->group("Memory");
  cmd.add_flag("--amp,!--no-amp", o.amp, "Mixed precision: autocast matmuls and attention, fp32 master weights")
      ->group("Memory");
  cmd.add_option("--amp-dtype", o.amp_dtype, "auto (bf16 where supported, else fp16 with loss scaling), bf16 or fp16")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "bf16", "fp16"}))->group("Memory");
  cmd.add_flag("--chunked-loss,!--no-chunked-loss", o.chunked_loss,
               "Compute the LM head and loss over chunks of tokens, never the full logits")->group("Memory");
  cmd.add_option("--loss-chunk-tokens", o.loss_chunk_tokens, "Tokens per loss chunk (0 = sized to the vocabulary)")
      ->capture_default_str()->check(non_negative)->group("Memory");
  cmd.add_flag("--use-8bit-optimizer", o.use_8bit_optimizer,
               "AdamW with blockwise 8-bit moments (2 bytes per parameter instead of 8)")->group("Memory");
  cmd.add_option("--attention", o.attention,
                 "Attention kernel: auto, or force one (an error, never a fallback, if it cannot run)")
      ->capture_default_str()->check(CLI::IsMember({"auto", "flash", "efficient", "cudnn", "math"}))->group("Memory");

  cmd.add_flag("--chunked-training", o.chunked_training,
               "Train each window in chunks of --chunk-size tokens (activation memory follows the chunk)")
      ->group("Long context");
  cmd.add_option("--chunk-size", o.chunk_size,
                 "Tokens per chunk (on a GPU, small chunks leave it waiting on kernel launches: GPT-2 124M "
                 "measured 0.47x the whole window's speed at 2048, 0.9-1.0x at 8192; docs/long-context.md)")
      ->check(positive)->group("Long context");
  cmd.add_option("--chunk-mode", o.chunk_mode,
                 "exact: whole-window gradients; truncated: no gradient across chunks (Transformer-XL)")
      ->capture_default_str()->check(CLI::IsMember({"exact", "truncated"}))->group("Long context");
  cmd.add_option("--chunk-memory", o.chunk_memory,
                 "Truncated mode: earlier tokens each chunk attends to (0 = the whole window)")
      ->capture_default_str()->check(non_negative)->group("Long context");

  cmd.add_flag("--shard-optimizer,!--no-shard-optimizer", o.shard_optimizer,
               "Under mpirun: shard optimizer state across ranks (ZeRO-1)")->group("Distributed");
  cmd.add_option("--bucket-mb", o.bucket_mb, "Under mpirun: gradient communication bucket size in MiB")
      ->capture_default_str()->check(CLI::Range(0.01, 4096.0))->group("Distributed");
  cmd.add_option("--hang-timeout", o.hang_timeout,
                 "Under mpirun: seconds a rank may go without progress (a stuck peer) before it ends the job; 0 = never")
      ->capture_default_str()->check(CLI::Range(0.0, 604800.0))->group("Distributed");  // up to a week

  cmd.add_option("--eval-interval", o.eval_interval, "Steps between validation passes (0 = only at the end)")
      ->capture_default_str()->check(non_negative)->group("Evaluation and output");
  cmd.add_option("--eval-batches", o.eval_batches, "Micro-batches per validation pass")
      ->capture_default_str()->check(non_negative)->group("Evaluation and output");
  cmd.add_option("--out-dir", o.out_dir, "Directory for checkpoints")->capture_default_str()
      ->group("Evaluation and output");
  cmd.add_option("--checkpoint-interval", o.checkpoint_interval, "Steps between checkpoints (0 = only at the end)")
      ->capture_default_str()->check(non_negative)->group("Evaluation and output");
  cmd.add_option("--resume", o.resume, "Checkpoint file to resume from, 'latest' (in --out-dir), or 'auto' (latest if there is one, else start)")
      ->group("Evaluation and output");
  cmd.add_option("--log-file", o.log_file, "JSONL metrics file, one object per step")->group("Evaluation and output");
  cmd.add_option("--export-hf", o.export_hf, "Write the final model to this directory in Hugging Face GPT-2 format")
      ->group("Evaluation and output");
  cmd.add_option("--device", o.device, "auto, cpu, cuda or cuda:N")->capture_default_str()
      ->group("Evaluation and output");
  cmd.add_option("--seed", o.seed, "Seed for initialization and data order")->capture_default_str()
      ->group("Evaluation and output");
  cmd.add_option("--peak-tflops", o.peak_tflops, "Device peak TFLOP/s for MFU (0 = built-in table)")
      ->check(CLI::Range(0.0, 1e6))->group("Evaluation and output");

  cmd.add_option("--profile-file", o.profile_file,
                 "Write a Chrome trace (PyTorch profiler: operators and GPU kernels) of the profiled steps here")
      ->group("Profiling");
  cmd.add_option("--profile-from", o.profile_from, "First profiled step (1-based)")
      ->capture_default_str()->check(positive)->group("Profiling");
  cmd.add_option("--profile-steps", o.profile_steps, "Number of profiled steps")
      ->capture_default_str()->check(CLI::Range(std::int64_t{1}, std::int64_t{1000}))->group("Profiling");
}

CommandAction add_train_command(CLI::App& app) {
  auto options = std::make_shared<TrainOptions>();
  CLI::App* cmd = app.add_subcommand("train", "Train a model on a shard set");
  enable_config_file(*cmd);
  bind_train_options(*cmd, *options);
  return [options] {
    validate(*options);
    run_training(*options);
  };
}

}  // namespace aios::cli
