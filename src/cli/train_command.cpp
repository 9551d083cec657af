#include "cli/train_command.h"

#include <cstdio>
#include <limits>
#include <memory>

#include "base/error.h"
#include "cli/app.h"
#include "train/stop_signals.h"
#include "train/trainer.h"

namespace aios::cli {
namespace {

constexpr auto kMaxInt = std::numeric_limits<std::int64_t>::max();

// An option whose value names an enum: the accepted names come from the enum's table, and a
// wrong one is refused naming the option and the names.
template <typename E>
CLI::Option* add_enum_option(CLI::App& cmd, const std::string& name, E& value, const std::string& help) {
  std::vector<std::string> names;
  for (const auto& entry : enum_names(E{})) names.emplace_back(entry.name);
  return cmd
      .add_option_function<std::string>(
          name, [&value](const std::string& text) { value = *enum_from_string<E>(text); }, help)
      ->check(CLI::IsMember(names))
      ->default_str(to_string(value));
}

// An on/off flag ("--amp,!--no-amp" or "--use-8bit-optimizer"): its help says its default, read
// from `value` as bound (CLI11 would print "{false}" after a negatable pair's names instead).
CLI::Option* add_switch(CLI::App& cmd, const std::string& names, bool& value, const std::string& help) {
  return cmd.add_flag(names, value, help + (value ? " (default: on)" : " (default: off)"));
}

}  // namespace

void bind_train_options(CLI::App& cmd, TrainOptions& o) {
  const auto positive = CLI::Range(std::int64_t{1}, kMaxInt);
  const auto non_negative = CLI::Range(std::int64_t{0}, kMaxInt);

  cmd.add_option("--dataset-file", o.data.dataset_file,
                 "Shard set written by `aios prepare` (directory or manifest.json)")
      ->group("Data");
  cmd.add_option("--window-size", o.data.window_size, "Tokens of context per training sample")
      ->capture_default_str()
      ->check(positive)
      ->group("Data");
  add_switch(cmd, "--verify-shards,!--no-verify-shards", o.data.verify_shards,
             "Check each shard's checksum the first time it is read")
      ->group("Data");

  cmd.add_option("--model", o.model.preset, "Model preset")
      ->capture_default_str()
      ->check(CLI::IsMember({"tiny", "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"}))
      ->group("Model");
  cmd.add_option("--init-from", o.model.init_from, "Hugging Face GPT-2 directory (config.json + model.safetensors)")
      ->check(CLI::ExistingDirectory)
      ->group("Model");
  cmd.add_option("--n-layer", o.model.n_layer, "Override the preset's layer count")->check(positive)->group("Model");
  cmd.add_option("--n-head", o.model.n_head, "Override the preset's head count")->check(positive)->group("Model");
  cmd.add_option("--n-embd", o.model.n_embd, "Override the preset's width")->check(positive)->group("Model");
  cmd.add_option("--vocab-size", o.model.vocab_size, "Model vocabulary (default: the dataset's)")
      ->check(positive)
      ->group("Model");
  cmd.add_option("--seq-len", o.model.max_positions,
                 "Learned positions: the longest window the model takes (default: the preset's)")
      ->check(positive)
      ->group("Model");
  add_enum_option(cmd, "--model-dtype", o.model.dtype, "Parameter type (float64 is for reference checks on the CPU)")
      ->group("Model");
  add_enum_option(cmd, "--pos", o.model.position,
                  "Positions: learned (GPT-2's table, windows up to --seq-len) or rope (rotary)")
      ->group("Model");
  cmd.add_option("--dropout", o.model.dropout, "Dropout probability")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.9))
      ->group("Model");

  cmd.add_option("--batch-size", o.data.batch_size, "Micro-batch size per rank")
      ->capture_default_str()
      ->check(positive)
      ->group("Optimization");
  cmd.add_option("--gradient-accumulation-steps", o.data.gradient_accumulation_steps,
                 "Micro-batches per optimizer step")
      ->capture_default_str()
      ->check(positive)
      ->group("Optimization");
  cmd.add_option("--steps", o.run.steps, "Optimizer steps to train")
      ->capture_default_str()
      ->check(positive)
      ->group("Optimization");
  cmd.add_option("--lr", o.optimizer.lr, "Peak learning rate")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 10.0))
      ->group("Optimization");
  cmd.add_option("--min-lr", o.optimizer.min_lr, "Learning rate at the end of the cosine decay")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 10.0))
      ->group("Optimization");
  cmd.add_option("--warmup-steps", o.optimizer.warmup_steps, "Linear warmup steps")
      ->capture_default_str()
      ->check(non_negative)
      ->group("Optimization");
  cmd.add_option("--weight-decay", o.optimizer.weight_decay, "AdamW decoupled weight decay (matrices only)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 10.0))
      ->group("Optimization");
  add_switch(cmd, "--decay-embeddings", o.optimizer.decay_embeddings, "Apply weight decay to the embeddings too")
      ->group("Optimization");
  cmd.add_option("--beta1", o.optimizer.beta1, "AdamW beta1")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.999999))
      ->group("Optimization");
  cmd.add_option("--beta2", o.optimizer.beta2, "AdamW beta2")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.999999))
      ->group("Optimization");
  cmd.add_option("--eps", o.optimizer.eps, "AdamW epsilon")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0))
      ->group("Optimization");
  cmd.add_option("--grad-clip", o.optimizer.grad_clip, "Clip gradients to this global norm (0 = off)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e6))
      ->group("Optimization");

  add_switch(cmd, "--gradient-checkpointing,!--no-gradient-checkpointing", o.memory.gradient_checkpointing,
             "Recompute each block's activations in backward")
      ->group("Memory");
  cmd.add_option("--checkpoint-every", o.memory.checkpoint_every,
                 "With --gradient-checkpointing: checkpoint every K-th block (1 = all)")
      ->capture_default_str()
      ->check(positive)
      ->group("Memory");
  add_switch(cmd, "--keep-attention-output,!--no-keep-attention-output", o.memory.keep_attention_output,
             "With --gradient-checkpointing on a GPU: keep each block's attention output for its recomputation "
             "(skips the attention's second forward; one [batch, window, width] tensor more per block)")
      ->group("Memory");
  add_switch(cmd, "--amp,!--no-amp", o.memory.amp,
             "Mixed precision: autocast matmuls and attention, fp32 master weights")
      ->group("Memory");
  add_enum_option(cmd, "--amp-dtype", o.memory.amp_dtype,
                  "auto (bf16 where supported, else fp16 with loss scaling), bf16 or fp16")
      ->group("Memory");
  add_switch(cmd, "--chunked-loss,!--no-chunked-loss", o.memory.chunked_loss,
             "Compute the LM head and loss over chunks of tokens, never the full logits")
      ->group("Memory");
  cmd.add_option("--loss-chunk-tokens", o.memory.loss_chunk_tokens,
                 "Tokens per loss chunk (0 = sized to the vocabulary)")
      ->capture_default_str()
      ->check(non_negative)
      ->group("Memory");
  add_switch(cmd, "--use-8bit-optimizer", o.optimizer.use_8bit_optimizer,
             "AdamW with blockwise 8-bit moments (2 bytes per parameter instead of 8)")
      ->group("Memory");
  add_enum_option(cmd, "--attention", o.memory.attention,
                  "Attention kernel: auto, or force one (an error, never a fallback, if it cannot run)")
      ->group("Memory");

  add_switch(cmd, "--chunked-training", o.memory.chunked_training,
             "Train each window in chunks of --chunk-size tokens (activation memory follows the chunk)")
      ->group("Long context");
  cmd.add_option("--chunk-size", o.memory.chunk_size,
                 "Tokens per chunk (on a GPU, small chunks leave it waiting on kernel launches: see "
                 "docs/long-context.md for measured speeds by chunk size)")
      ->check(positive)
      ->group("Long context");
  add_enum_option(cmd, "--chunk-mode", o.memory.chunk_mode,
                  "exact: whole-window gradients; truncated: no gradient across chunks (Transformer-XL)")
      ->group("Long context");
  cmd.add_option("--chunk-memory", o.memory.chunk_memory,
                 "Truncated mode: earlier tokens each chunk attends to (0 = the whole window)")
      ->capture_default_str()
      ->check(non_negative)
      ->group("Long context");

  add_switch(cmd, "--shard-optimizer,!--no-shard-optimizer", o.parallel.shard_optimizer,
             "Under mpirun: shard optimizer state across ranks (ZeRO-1)")
      ->group("Distributed");
  cmd.add_option("--bucket-mb", o.parallel.bucket_mb, "Under mpirun: gradient communication bucket size in MiB")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 4096.0))
      ->group("Distributed");
  cmd.add_option(
         "--hang-timeout", o.parallel.hang_timeout,
         "Under mpirun: seconds a rank may go without progress (a stuck peer) before it ends the job; 0 = never")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 604800.0))
      ->group("Distributed");  // up to a week

  cmd.add_option("--eval-interval", o.run.eval_interval, "Steps between validation passes (0 = only at the end)")
      ->capture_default_str()
      ->check(non_negative)
      ->group("Evaluation and output");
  cmd.add_option("--eval-batches", o.run.eval_batches, "Micro-batches per validation pass")
      ->capture_default_str()
      ->check(non_negative)
      ->group("Evaluation and output");
  cmd.add_option("--eval-hellaswag", o.run.eval_hellaswag,
                 "A HellaSwag-format JSONL file whose accuracy (acc, acc_norm) is measured at each validation pass")
      ->group("Evaluation and output");
  cmd.add_option("--sample-every", o.run.sample_every,
                 "Steps between text samples from the model, printed and logged (0 = none)")
      ->capture_default_str()
      ->check(non_negative)
      ->group("Evaluation and output");
  cmd.add_option("--sample-prompt", o.run.sample_prompt, "Text the samples continue (default: a new document)")
      ->group("Evaluation and output");
  cmd.add_option("--sample-tokens", o.run.sample_tokens, "New tokens per sample")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 20))
      ->group("Evaluation and output");
  cmd.add_option("--out-dir", o.run.out_dir,
                 "Directory for checkpoints (default: runs/YYYYMMDD-HHMMSS, the run's start in UTC)")
      ->capture_default_str()
      ->group("Evaluation and output");
  cmd.add_option("--checkpoint-interval", o.run.checkpoint_interval, "Steps between checkpoints (0 = only at the end)")
      ->capture_default_str()
      ->check(non_negative)
      ->group("Evaluation and output");
  cmd.add_option("--keep-last", o.run.keep_last,
                 "Keep only the newest K checkpoints, and the one 'latest' names (0 = keep all)")
      ->capture_default_str()
      ->check(non_negative)
      ->group("Evaluation and output");
  cmd.add_option("--keep-every", o.run.keep_every,
                 "With --keep-last: also keep each checkpoint whose step is a multiple of M (0 = none)")
      ->capture_default_str()
      ->check(non_negative)
      ->group("Evaluation and output");
  cmd.add_option("--checkpoint-minutes", o.run.checkpoint_minutes,
                 "Also write a checkpoint once this many minutes have passed since the last one (0 = off)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e6))
      ->group("Evaluation and output");
  cmd.add_option(
         "--resume", o.run.resume,
         "Checkpoint file to resume from, 'latest' (in --out-dir), or 'auto' (latest if there is one, else start)")
      ->group("Evaluation and output");
  add_switch(cmd, "--overwrite", o.run.overwrite,
             "Start afresh in an --out-dir that holds checkpoints of an earlier run (they are replaced as this "
             "run writes its own)")
      ->group("Evaluation and output");
  cmd.add_option("--log-file", o.run.log_file, "JSONL metrics file, one object per step")
      ->group("Evaluation and output");
  cmd.add_option("--log-every", o.run.log_every,
                 "When stderr is not a terminal (a batch job): a progress line every N steps, and at least "
                 "every 30 s (0 = every 1/20 of the run)")
      ->capture_default_str()
      ->check(non_negative)
      ->group("Evaluation and output");
  cmd.add_option("--export-hf", o.run.export_hf, "Write the final model to this directory in Hugging Face GPT-2 format")
      ->group("Evaluation and output");
  cmd.add_option("--device", o.run.device, "auto, cpu, cuda or cuda:N")
      ->capture_default_str()
      ->group("Evaluation and output");
  cmd.add_option("--seed", o.run.seed, "Seed for initialization and data order")
      ->capture_default_str()
      ->group("Evaluation and output");
  cmd.add_option("--peak-tflops", o.run.peak_tflops, "Device peak TFLOP/s for MFU (0 = built-in table)")
      ->check(CLI::Range(0.0, 1e6))
      ->group("Evaluation and output");

  cmd.add_option("--profile-file", o.run.profile_file,
                 "Write a Chrome trace (PyTorch profiler: operators and GPU kernels) of the profiled steps here")
      ->group("Profiling");
  cmd.add_option("--profile-from", o.run.profile_from, "First profiled step (1-based)")
      ->capture_default_str()
      ->check(positive)
      ->group("Profiling");
  cmd.add_option("--profile-steps", o.run.profile_steps, "Number of profiled steps")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1000}))
      ->group("Profiling");
  add_switch(cmd, "--cuda-graphs,!--no-cuda-graphs", o.run.cuda_graphs,
             "On a GPU, capture the training step as a CUDA graph after two eager steps and replay it "
             "(eager where the run cannot: the log says why)")
      ->group("Speed");
  // Hidden (no group): tests and GPU drills turn on the AIOS_FAULT_* variables with it.
  cmd.add_flag("--fault-injection", o.run.fault_injection, "Act on AIOS_FAULT_* variables (testing aid)")->group("");
}

CommandAction add_train_command(CLI::App& app) {
  auto options = std::make_shared<TrainOptions>();
  CLI::App* cmd = app.add_subcommand("train", "Train a model on a shard set");
  enable_config_file(*cmd);
  bind_train_options(*cmd, *options);
  // A run stopped by a signal exits 128 + its number once its checkpoint is written.
  return [options] {
    const TrainSummary summary = train(*options);
    return summary.stop_signal != 0 ? StopSignals::exit_status(summary.stop_signal) : 0;
  };
}

}  // namespace aios::cli
