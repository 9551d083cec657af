// The training step reads top to bottom: batch -> forward (autocast) / backward (scaled) per
// micro-batch, re-run smaller on out-of-memory -> unscale -> clip -> optimizer (skipped on fp16
// overflow) -> metrics -> evaluation -> checkpoint. Host-device syncs are marked "sync".
#include "train/trainer.h"

#include <torch/cuda.h>
#include <torch/version.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <nlohmann/json.hpp>
#include <functional>
#include <optional>
#include <thread>
#include <unistd.h>

#include "base/error.h"
#include "base/files.h"
#include "data/shard_dataset.h"
#include "dist/comm.h"
#include "dist/gradient_sync.h"
#include "dist/hang_watchdog.h"
#include "dist/zero_sharding.h"
#include "io/checkpoint.h"
#include "io/metrics_log.h"
#include "model/causal_attention.h"
#include "model/gpt.h"
#include "memory/activation_checkpoint.h"
#include "memory/attention_backend.h"
#include "memory/chunked_cross_entropy.h"
#include "memory/chunked_training.h"
#include "memory/mixed_precision.h"
#include "model/hf_gpt2.h"
#include "optim/loss_scaler.h"
#include "optim/lr_schedule.h"
#include "optim/optimizer.h"
#include "train/device_stats.h"
#include "train/fault_injection.h"
#include "train/step_shape.h"
#include "train/step_profiler.h"

namespace aios {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

torch::Device choose_device(const std::string& requested) {
  if (requested == "cpu") return torch::kCPU;
  if (requested == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::kCPU;
  if (!torch::cuda::is_available()) {
    throw Error("--device", "'" + requested + "' asked for CUDA but no CUDA device is available in this build/machine",
                "--device cpu or auto");
  }
  torch::Device device(requested);
  if (device.index() >= static_cast<int>(torch::cuda::device_count())) {
    throw Error("--device", "'" + requested + "' but only " + std::to_string(torch::cuda::device_count()) +
                                " CUDA device(s) exist");
  }
  return device.has_index() ? device : torch::Device(torch::kCUDA, 0);
}

// The model's shape: a Hugging Face config (--init-from) or a preset with overrides; then checked
// against the data and the window.
GptConfig model_config(const TrainOptions& o, const Manifest& data) {
  GptConfig config;
  if (!o.init_from.empty()) {
    if (o.n_layer > 0 || o.n_head > 0 || o.n_embd > 0 || o.seq_len > 0 || o.vocab_size > 0) {
      throw Error("--init-from", "takes the model's shape from " + o.init_from + "/config.json",
                  "no --n-layer/--n-head/--n-embd/--seq-len/--vocab-size with --init-from");
    }
    config = read_hf_gpt2_config(o.init_from);
  } else {
    config = gpt_preset(o.model);
    if (o.n_layer > 0) config.n_layer = o.n_layer;
    if (o.n_head > 0) config.n_head = o.n_head;
    if (o.n_embd > 0) config.n_embd = o.n_embd;
    if (o.seq_len > 0) config.max_positions = o.seq_len;
    config.vocab_size = o.vocab_size > 0 ? o.vocab_size : data.tokenizer.vocab_size;
  }
  config.dropout = o.dropout;
  config.position = o.pos;
  check_config(config);
  if (data.tokenizer.vocab_size > config.vocab_size) {
    throw Error("--vocab-size", "the dataset's vocabulary of " + std::to_string(data.tokenizer.vocab_size) +
                                    " ids exceeds the model's " + std::to_string(config.vocab_size),
                "--vocab-size >= " + std::to_string(data.tokenizer.vocab_size) + " (or leave it unset)");
  }
  if (!config.rope() && o.window_size > config.max_positions) {
    throw Error("--window-size", "value " + std::to_string(o.window_size) + " exceeds the model's " +
                                     std::to_string(config.max_positions) + " positions",
                "--window-size <= " + std::to_string(config.max_positions) + ", a larger --seq-len, or --pos rope");
  }
  return config;
}

// Reads this rank's next `count` windows as one [count, T + 1] int64 tensor on `device`.
torch::Tensor next_batch(ShardDataset& data, std::int64_t count, const torch::Device& device) {
  auto batch = torch::empty({count, data.window_tokens()}, torch::kLong);
  data.next_windows(count, batch.data_ptr<std::int64_t>());
  return device.is_cpu() ? batch : batch.pin_memory().to(device, /*non_blocking=*/true);
}

// Mean loss per token over `batches` micro-batches of validation windows, always the same ones.
// Each rank evaluates its own windows; the mean over ranks is returned on every rank.
double evaluate(Gpt& model, ShardDataset& val, std::int64_t batches, std::int64_t batch_size,
                const torch::Device& device, const MixedPrecision& mp, Comm& comm) {
  torch::NoGradGuard no_grad;
  AutocastRegion autocast(device.type(), mp.enabled, mp.dtype);
  model->eval();
  val.set_cursor(0);
  const std::int64_t count = std::min<std::int64_t>(batch_size, val.windows_per_epoch());
  const std::int64_t t = val.window_tokens() - 1;
  auto total = torch::zeros({}, torch::TensorOptions(device).dtype(torch::kDouble));
  for (std::int64_t i = 0; i < batches; ++i) {
    auto batch = next_batch(val, count, device);
    total += model->loss_sum(batch.slice(1, 0, t), batch.slice(1, 1, t + 1)).to(torch::kDouble);
  }
  model->train();
  const double mean = total.item<double>() / static_cast<double>(batches * count * t);  // sync
  return comm.sum_over_ranks(mean) / comm.world();
}

// `before_last_backward` arms the gradient communication that overlaps the last backward.
// `chunking` (with shape.chunk tokens per chunk) runs each micro-batch through chunked training.
// `inject` (tests): raise an out-of-memory in the first micro-batch, before its backward when
// `inject->in_forward`, else after it.
struct OomInjection {
  bool in_forward;
};

torch::Tensor accumulate_gradients(Gpt& model, ShardDataset& data, const StepShape& shape, std::int64_t window,
                                   std::int64_t global_tokens, const torch::Device& device, const MixedPrecision& mp,
                                   const LossScaler& scaler, const std::function<void()>& before_last_backward,
                                   const std::optional<ChunkedTraining>& chunking,
                                   const std::optional<OomInjection>& inject) {
  const auto tokens_per_step = static_cast<double>(global_tokens);
  auto loss_total = torch::zeros({}, torch::TensorOptions(device).dtype(torch::kDouble));
  for (std::int64_t micro = 0; micro < shape.accumulation; ++micro) {
    const auto maybe_inject = [&](bool in_forward) {
      if (inject && micro == 0 && inject->in_forward == in_forward) {
        TORCH_CHECK_WITH(OutOfMemoryError, false, "injected out of memory (AIOS_FAULT_OOM_AT_STEP)");
      }
    };
    const bool last = micro + 1 == shape.accumulation;
    auto batch = next_batch(data, shape.micro_batch, device);
    const auto tokens = batch.slice(1, 0, window), targets = batch.slice(1, 1, window + 1);
    if (chunking) {  // forward and backward chunk by chunk inside
      maybe_inject(true);
      const auto summed = chunked_forward_backward(
          model, tokens, targets, {chunking->mode, shape.chunk, chunking->memory}, mp,
          [&](const torch::Tensor& chunk_loss) { return scaler.scale(chunk_loss / tokens_per_step); },
          last ? before_last_backward : std::function<void()>([] {}));
      loss_total += summed.to(torch::kDouble) / tokens_per_step;
    } else {
      torch::Tensor loss;
      {
        AutocastRegion autocast(device.type(), mp.enabled, mp.dtype);
        // Each micro-batch adds (sum of its token losses) / (tokens in the whole step), so the
        // gradient is the step's mean whatever the split into micro-batches.
        loss = model->loss_sum(tokens, targets) / tokens_per_step;
      }
      maybe_inject(true);
      if (last) before_last_backward();
      scaler.scale(loss).backward();
      loss_total += loss.detach().to(torch::kDouble);
    }
    maybe_inject(false);
  }
  return loss_total;
}

// What this run is: the first JSONL line, and enough to compare runs without their command lines.
struct RunDescription {
  const TrainOptions& options;
  const GptConfig& config;
  const torch::Device& device;
  const Manifest& data;
  const MixedPrecision& precision;
  const AttentionChoice& attention;
  const Optimizer& optimizer;
  std::int64_t resumed_step;
};

json header_record(const RunDescription& run) {
  const TrainOptions& o = run.options;
  const GptConfig& config = run.config;
  return {{"type", "config"},
          {"aios_version", AIOS_VERSION},
          {"libtorch_version", std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) +
                                   "." + std::to_string(TORCH_VERSION_PATCH)},
          {"device", device_name(run.device)},
          {"attention", {{"requested", run.attention.requested}, {"backend", run.attention.backend},
                         {"note", run.attention.note}}},
          {"model", {{"preset", o.init_from.empty() ? o.model : "hf:" + o.init_from}, {"n_layer", config.n_layer}, {"n_head", config.n_head},
                     {"n_embd", config.n_embd}, {"vocab_size", config.vocab_size},
                     {"max_positions", config.max_positions}, {"position", config.position},
                     {"parameters", config.parameter_count()},
                     {"dtype", o.model_dtype}}},
          {"data", {{"dataset_file", o.dataset_file}, {"tokenizer", run.data.tokenizer.kind},
                    {"train_tokens", run.data.tokens("train")}, {"val_tokens", run.data.tokens("val")}}},
          {"options", {{"window_size", o.window_size}, {"batch_size", o.batch_size},
                       {"gradient_accumulation_steps", o.gradient_accumulation_steps}, {"steps", o.steps},
                       {"lr", o.lr}, {"min_lr", o.min_lr}, {"warmup_steps", o.warmup_steps},
                       {"weight_decay", o.weight_decay}, {"beta1", o.beta1}, {"beta2", o.beta2}, {"eps", o.eps},
                       {"grad_clip", o.grad_clip}, {"seed", o.seed}, {"dropout", o.dropout}}},
          {"memory_techniques", {{"gradient_checkpointing", o.gradient_checkpointing},
                                 {"checkpoint_every", o.gradient_checkpointing ? o.checkpoint_every : 0},
                                 {"chunked_loss", o.chunked_loss},
                                 {"chunked_training", o.chunked_training ? json{{"mode", o.chunk_mode},
                                                                                {"chunk_size", o.chunk_size},
                                                                                {"chunk_memory", o.chunk_memory}}
                                                                         : json(false)},
                                 {"amp", run.precision.describe()},
                                 {"optimizer", run.optimizer.kind()},
                                 {"optimizer_state_bytes", run.optimizer.state_bytes()}}},
          {"resumed_from_step", run.resumed_step}};
}

}  // namespace

TrainSummary run_training(const TrainOptions& o) {
  validate(o);
  // Under mpirun each rank drives the GPU of its local rank.
  const RankInfo ranks = mpi_rank_info();
  torch::Device device = choose_device(o.device);
  if (device.is_cuda() && ranks.world > 1) device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(ranks.local_rank));
  const auto comm = make_comm(device);
  const bool lead = comm->rank() == 0;  // rank 0 logs, prints and writes the shared checkpoint file
  const bool sharded = comm->world() > 1 && o.shard_optimizer;
  const auto dtype = o.model_dtype == "float64" ? torch::kDouble : torch::kFloat;
  const MixedPrecision mp = resolve_mixed_precision(o.amp, o.amp_dtype, device, dtype);

  const ShardSet shards = ShardSet::open(o.dataset_file);
  const GptConfig config = model_config(o, shards.manifest());
  ShardDatasetOptions train_options;
  train_options.rank = comm->rank();
  train_options.world = comm->world();
  train_options.seq_len = o.window_size;
  train_options.seed = o.seed;
  train_options.verify_checksums = o.verify_shards;
  ShardDataset train_data(shards, train_options);
  std::optional<ShardDataset> val_data;
  if (o.eval_batches > 0 && ShardDataset::windows_in(shards, "val", o.window_size) > 0) {
    ShardDatasetOptions val_options = train_options;
    val_options.split = "val";
    val_options.shuffle = false;
    val_data.emplace(shards, val_options);
  } else if (o.eval_batches > 0 && lead) {
    std::fprintf(stderr, "aios train: note: no validation: the val split of %s holds no window of %lld tokens\n",
                 o.dataset_file.c_str(), static_cast<long long>(o.window_size + 1));
  }

  const auto compute_dtype = mp.enabled ? mp.dtype : dtype;  // what matmuls and attention run in
  const AttentionChoice attention = configure_attention(
      o.attention, {device, compute_dtype, config.n_head, config.n_embd / config.n_head,
                    o.window_size, o.dropout});
  // Chunks after the first attend to earlier tokens' keys too: a lower-right causal mask, which
  // may run on another kernel than the whole-window attention above.
  std::string chunk_attention;
  if (o.chunked_training) {
    const auto like = at::TensorOptions(device).dtype(compute_dtype);
    const std::int64_t head_dim = config.n_embd / config.n_head, chunk = std::min(o.chunk_size, o.window_size);
    chunk_attention = causal_attention_after_past_kernel(at::empty({1, config.n_head, chunk, head_dim}, like),
                                                         at::empty({1, config.n_head, 2 * chunk, head_dim}, like),
                                                         o.dropout);
  }

  torch::manual_seed(o.seed);
  Gpt model(config);
  if (!o.init_from.empty()) load_hf_gpt2_weights(o.init_from, model);
  if (o.gradient_checkpointing) apply_activation_checkpointing(model, o.checkpoint_every);
  const std::int64_t loss_chunk =
      o.chunked_loss ? (o.loss_chunk_tokens > 0 ? o.loss_chunk_tokens : default_loss_chunk_tokens(config.vocab_size)) : 0;
  apply_chunked_loss(model, loss_chunk);
  model->to(device, dtype);
  std::vector<torch::Tensor> parameters = model->parameters();
  if (comm->world() > 1) {
    torch::NoGradGuard no_grad;
    for (auto& p : parameters) comm->broadcast(p, 0);  // every rank starts from rank 0's weights
  }
  // Data parallel: ZeRO-1 shards (the optimizer sees this rank's chunk of each parameter) or plain
  // all-reduce (the optimizer sees whole parameters, replicated on every rank).
  const AdamWSettings adamw{o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, o.decay_embeddings};
  const auto bucket_bytes = static_cast<std::int64_t>(o.bucket_mb * 1024 * 1024);
  std::optional<ZeroSharding> zero;
  std::optional<GradientAllReduce> all_reduce;
  if (sharded) {
    zero.emplace(adamw_groups(*model, adamw), *comm, bucket_bytes, parameters);
  } else if (comm->world() > 1) {
    all_reduce.emplace(parameters, *comm, bucket_bytes);
  }
  const auto optimizer = make_adamw(zero ? zero->shard_groups() : adamw_groups(*model, adamw), adamw,
                                    o.use_8bit_optimizer);
  LossScaler scaler(mp.needs_loss_scaling(), device);
  const LrSchedule schedule{o.lr, o.min_lr, o.warmup_steps, o.steps};

  TrainProgress progress;
  // auto: continue a run directory that has a checkpoint, else start (a requeued batch job).
  const std::string resume = o.resume != "auto" ? o.resume
                             : is_regular_file(join_path(o.out_dir, "latest")) ? "latest" : "";
  if (!resume.empty()) {
    progress = load_checkpoint(resume, o.out_dir, *model, *optimizer, scaler, config.describe(), device, *comm,
                               sharded);
    train_data.set_cursor(progress.data_cursor);
  }
  MetricsLog log(lead ? o.log_file : "", /*append=*/!resume.empty());
  json header = header_record({o, config, device, shards.manifest(), mp, attention, *optimizer, progress.step});
  if (!chunk_attention.empty()) header["attention"]["chunks_after_the_first"] = chunk_attention;
  header["distributed"] = {{"comm", comm->describe()}, {"world", comm->world()}, {"sharded_optimizer", sharded},
                           {"optimizer_state_bytes_per_rank", comm->gather_values(optimizer->state_bytes())}};
  log.write(header);
  const std::int64_t world = comm->world();
  if (lead && o.chunked_training) {
    std::fprintf(stderr, "aios train: chunked training (%s), %lld-token chunks%s; later chunks' attention: %s\n",
                 o.chunk_mode.c_str(), static_cast<long long>(o.chunk_size),
                 o.chunk_mode == "truncated" ? "; no gradient crosses a chunk boundary" : "; whole-window gradients",
                 chunk_attention.c_str());
    if (o.chunk_mode == "exact" && o.gradient_checkpointing) {
      // Measured on an H100 (docs/benchmarks.md, third run): 1.17-1.46x the tokens/s for 0.7-1.2 GiB more.
      std::fprintf(stderr,
                   "aios train: note: exact chunks are recomputed in their backward pass already; checkpointing "
                   "their blocks too adds a third forward. --no-gradient-checkpointing is faster for one chunk's "
                   "activations more memory\n");
    }
  }
  if (lead) {
    std::fprintf(stderr, "aios train: %s (%.2fM parameters) on %s%s, %lld tokens per step%s\n",
                 config.describe().c_str(), config.parameter_count() / 1e6, device_name(device).c_str(),
                 world > 1 ? (" x " + std::to_string(world) + " ranks (" + comm->describe() + ")").c_str() : "",
                 static_cast<long long>(o.batch_size * o.gradient_accumulation_steps * o.window_size * world),
                 progress.step > 0 ? (", resumed at step " + std::to_string(progress.step)).c_str() : "");
    std::fprintf(stderr, "aios train: precision %s | attention %s (%s)%s | optimizer %s%s, state %s per rank\n",
                 mp.describe().c_str(), attention.backend.c_str(), attention.requested.c_str(),
                 attention.note.empty() ? "" : ("; " + attention.note).c_str(), optimizer->kind().c_str(),
                 sharded ? " (ZeRO-1 sharded)" : "", format_bytes(static_cast<double>(optimizer->state_bytes())).c_str());
  }

  const std::int64_t window = o.window_size;
  StepShape shape{o.batch_size, o.gradient_accumulation_steps, o.chunked_training ? o.chunk_size : 0};
  const std::int64_t tokens_per_step = shape.micro_batch * shape.accumulation * window * world;
  const double flops_per_step = config.training_flops_per_token(window) * static_cast<double>(tokens_per_step);
  const double peak_flops =
      (o.peak_tflops > 0 ? o.peak_tflops : default_peak_tflops(device, compute_dtype)) * 1e12;
  const FaultInjection faults = FaultInjection::from_environment();
  if (faults.memory_limit_gib && faults.on_rank(comm->rank())) {
    if (limit_device_memory(device, *faults.memory_limit_gib * 1024.0 * 1024.0 * 1024.0)) {
      std::fprintf(stderr, "aios train: rank %d: memory limited to %.1f GiB (AIOS_FAULT_MEMORY_GIB)\n", comm->rank(),
                   *faults.memory_limit_gib);
    } else {
      std::fprintf(stderr, "aios train: rank %d: note: AIOS_FAULT_MEMORY_GIB has no effect on %s (CUDA only)\n",
                   comm->rank(), device.str().c_str());
    }
  }
  // A stuck peer would leave this rank waiting in a collective for ever (one process: nothing to wait on).
  HangWatchdog watchdog(comm->rank(), world > 1 ? o.hang_timeout : 0.0);
  std::optional<ChunkedTraining> chunking;  // its chunk size lives in `shape` (it can shrink)
  if (o.chunked_training) chunking = ChunkedTraining{o.chunk_mode, 0, o.chunk_memory};
  // Gradients summed over ranks, overlapping the last backward: reduce-scattered to their owners
  // (ZeRO-1) or all-reduced.
  const auto arm_communication = [&] {
    if (zero) zero->arm();
    if (all_reduce) all_reduce->arm();
  };
  const auto finish_communication = [&] {
    if (zero) zero->finish();
    if (all_reduce) all_reduce->finish();
  };
  std::int64_t injected_ooms = 0;
  ProgressLine progress_line(std::max<std::int64_t>(1, o.steps / 20), /*quiet=*/!lead);
  const auto run_start = Clock::now();
  const std::int64_t first_step = progress.step;
  TrainSummary summary;
  summary.attention_backend = attention.backend;

  const std::string profile_path =
      o.profile_file.empty() || world == 1
          ? o.profile_file
          : join_path(parent_path(o.profile_file),
                      file_stem(o.profile_file) + ".rank" + std::to_string(comm->rank()) + file_extension(o.profile_file));
  StepProfiler profiler(profile_path, o.profile_from, o.profile_steps, device);
  if (!o.profile_file.empty() && progress.step >= o.profile_from && lead) {
    std::fprintf(stderr, "aios train: note: no profile: the run resumes at step %lld, past --profile-from %lld\n",
                 static_cast<long long>(progress.step), static_cast<long long>(o.profile_from));
  }

  for (std::int64_t step = progress.step; step < o.steps; ++step) {
    profiler.before_step(step + 1);
    const auto step_start = Clock::now();
    reset_peak_memory(device);
    const double lr = schedule.at(step);
    optimizer->set_learning_rate(lr);

    // Forward/backward on every rank, gradient buckets going out during the last backward. A rank
    // that runs out of memory still issues every bucket's collective (finish_communication), so
    // no peer waits on it; then all ranks agree, and on out-of-memory anywhere every rank drops
    // the step and re-runs the same windows with a smaller micro-batch.
    const std::uint64_t step_cursor = train_data.cursor();
    torch::Tensor loss_total;
    for (;;) {
      watchdog.beat(step + 1, "forward/backward and gradient communication");
      // After the beat, so that the hung rank's watchdog names this step, as a real hang's would.
      if (faults.hang_step == step + 1 && faults.on_rank(comm->rank())) {
        std::fprintf(stderr, "aios train: rank %d: injected hang in step %lld (AIOS_FAULT_HANG_AT_STEP)\n",
                     comm->rank(), static_cast<long long>(step + 1));
        for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
      }
      for (auto& p : parameters) p.mutable_grad() = torch::Tensor();
      const bool inject_oom = faults.oom_step == step + 1 && faults.on_rank(comm->rank()) &&
                              injected_ooms < faults.oom_times;
      const auto injection = inject_oom ? std::optional<OomInjection>(OomInjection{faults.oom_in_forward}) : std::nullopt;
      if (faults.exit_step == step + 1 && faults.on_rank(comm->rank())) {
        std::fprintf(stderr, "aios train: rank %d: injected exit in step %lld (AIOS_FAULT_EXIT_AT_STEP)\n",
                     comm->rank(), static_cast<long long>(step + 1));
        ::_exit(3);
      }
      std::string oom_message;
      try {
        loss_total = accumulate_gradients(model, train_data, shape, window, tokens_per_step, device, mp, scaler,
                                          arm_communication, chunking, injection);
      } catch (const c10::OutOfMemoryError& e) {
        // The failed attempt's activations died with its stack frames; its partial gradients go below.
        if (inject_oom) ++injected_ooms;
        oom_message = e.what_without_backtrace();
        oom_message = "rank " + std::to_string(comm->rank()) + ": " + oom_message.substr(0, oom_message.find('\n'));
      }
      // Every rank issues every bucket's collective (the rest of them after a failure), then agrees.
      finish_communication();
      const auto failed_ranks = comm->gather_values(oom_message.empty() ? 0 : 1);
      std::string failed;
      for (int r = 0; r < comm->world(); ++r) {
        if (failed_ranks[static_cast<std::size_t>(r)] != 0) failed += (failed.empty() ? "" : ", ") + std::to_string(r);
      }
      if (failed.empty()) break;
      for (auto& p : parameters) p.mutable_grad() = torch::Tensor();
      loss_total = torch::Tensor();
      release_cached_memory(device);
      const std::string what = oom_message.empty() ? "out of memory on rank " + failed : oom_message;
      const StepShape smaller = shrink_after_oom(shape, o, step + 1, what);
      log.write({{"type", "event"}, {"event", "batch_shrink"}, {"step", step + 1}, {"reason", what},
                 {"ranks", failed_ranks}, {"micro_batch_before", shape.micro_batch}, {"micro_batch", smaller.micro_batch},
                 {"accumulation", smaller.accumulation}, {"chunk_before", shape.chunk}, {"chunk", smaller.chunk}});
      progress_line.finish();
      std::fprintf(stderr, "aios train: rank %d: step %lld: out of memory on rank(s) %s at micro-batch %lld; "
                   "retrying the same windows as %lld x %lld accumulation%s\n", comm->rank(),
                   static_cast<long long>(step + 1), failed.c_str(), static_cast<long long>(shape.micro_batch),
                   static_cast<long long>(smaller.micro_batch), static_cast<long long>(smaller.accumulation),
                   smaller.chunk != shape.chunk
                       ? (" (micro-batch already 1: chunk " + std::to_string(shape.chunk) + " -> " +
                          std::to_string(smaller.chunk) + " tokens)").c_str()
                       : "");
      shape = smaller;
      ++summary.batch_shrinks;
      train_data.set_cursor(step_cursor);
    }
    if (faults.nan_loss_step == step + 1) loss_total.fill_(std::nan(""));
    if (faults.inf_grad_step == step + 1) {
      const auto grads = optimizer->gradients();
      if (!grads.empty()) grads.front().view({-1})[0].fill_(std::numeric_limits<double>::infinity());
    }

    watchdog.beat(step + 1, "gradient norm, optimizer step and parameter all-gather");
    scaler.unscale(optimizer->gradients());
    const double grad_norm = optimizer->clip_grad_norm(o.grad_clip, sharded ? comm.get() : nullptr);  // sync
    const double loss = comm->sum_over_ranks(loss_total.item<double>());  // sync
    // Each rank checked its own shard (or the same all-reduced gradients): all skip together.
    const bool overflow = comm->agree_max(scaler.found_non_finite() ? 1 : 0) != 0;  // sync
    if (!std::isfinite(loss) || (!std::isfinite(grad_norm) && !scaler.enabled())) {
      throw Error("step " + std::to_string(step + 1),
                  "loss is " + std::to_string(loss) + " and gradient norm " + std::to_string(grad_norm) +
                      "; the step was not applied and the last checkpoint is kept",
                  "a lower --lr, more --warmup-steps or --grad-clip; resume with --resume latest");
    }
    // fp16: inf/NaN gradients mean the scale was too high; skip the update, the scale backs off.
    const bool skipped = overflow || !std::isfinite(grad_norm);
    if (!skipped) {
      optimizer->step();
      if (zero) zero->all_gather_parameters();
    }
    const double applied_scale = scaler.enabled() ? scaler.current_scale() : 1.0;  // sync
    scaler.update();
    summary.skipped_steps += skipped ? 1 : 0;
    progress.step = step + 1;
    progress.data_cursor = train_data.cursor();
    progress.tokens_seen += tokens_per_step;

    synchronize(device);  // sync: honest step time
    const double step_seconds = std::chrono::duration<double>(Clock::now() - step_start).count();
    if (profiler.after_step(progress.step) && lead) {
      progress_line.finish();
      std::fprintf(stderr, "aios train: profile of steps %lld-%lld written to %s\n",
                   static_cast<long long>(o.profile_from), static_cast<long long>(progress.step),
                   world > 1 ? (profile_path + " (and one per rank beside it)").c_str() : profile_path.c_str());
    }
    const double tokens_per_second = static_cast<double>(tokens_per_step) / step_seconds;
    const double elapsed = std::chrono::duration<double>(Clock::now() - run_start).count();
    const double eta = elapsed / static_cast<double>(progress.step - first_step) *
                       static_cast<double>(o.steps - progress.step);
    if (step == first_step) summary.first_loss = loss;
    summary.last_loss = loss;

    json record = {{"type", "step"}, {"step", progress.step}, {"loss", loss}, {"lr", lr},
                   {"grad_norm", std::isfinite(grad_norm) ? json(grad_norm) : json(nullptr)},
                   {"tokens", progress.tokens_seen},
                   {"tokens_per_s", tokens_per_second}, {"step_time_ms", step_seconds * 1e3},
                   {"micro_batch", shape.micro_batch}, {"accumulation", shape.accumulation},
                   {"mfu", peak_flops > 0 ? json(flops_per_step / step_seconds / peak_flops) : json(nullptr)}};
    if (scaler.enabled()) {
      record["loss_scale"] = applied_scale;
      record["skipped"] = skipped;
    }
    const MemoryStats memory = memory_stats(device);
    if (memory.available) {
      record["peak_allocated_bytes"] = memory.peak_allocated;
      record["peak_reserved_bytes"] = memory.peak_reserved;
      record["current_allocated_bytes"] = memory.current_allocated;
      if (world > 1) record["peak_allocated_bytes_per_rank"] = comm->gather_values(memory.peak_allocated);
    }

    const bool last = progress.step == o.steps;
    if (val_data && ((o.eval_interval > 0 && progress.step % o.eval_interval == 0) || last)) {
      watchdog.beat(step + 1, "evaluation");
      summary.last_val_loss = evaluate(model, *val_data, o.eval_batches, shape.micro_batch, device, mp, *comm);
      record["val_loss"] = summary.last_val_loss;
    }
    log.write(record);

    char val_text[32] = "";
    if (record.contains("val_loss")) std::snprintf(val_text, sizeof(val_text), " val %.4f", summary.last_val_loss);
    char line[320];
    std::snprintf(line, sizeof(line), "step %lld/%lld | loss %.4f%s | lr %.2e | %.0f tok/s%s%s | ETA %s",
                  static_cast<long long>(progress.step), static_cast<long long>(o.steps), loss, val_text,
                  lr, tokens_per_second,
                  memory.available ? (" | peak " + format_bytes(static_cast<double>(memory.peak_allocated))).c_str() : "",
                  skipped ? " | skipped: inf/NaN gradients, loss scale lowered" : "",
                  format_duration(eta).c_str());
    progress_line.update(line, record.contains("val_loss") || skipped);

    if ((o.checkpoint_interval > 0 && progress.step % o.checkpoint_interval == 0) || last) {
      watchdog.beat(step + 1, "writing a checkpoint");
      summary.last_checkpoint =
          save_checkpoint(o.out_dir, *model, *optimizer, scaler, progress, config.describe(), *comm, sharded);
    }
  }
  progress_line.finish();
  summary.steps_done = progress.step;
  summary.micro_batch = shape.micro_batch;
  summary.accumulation = shape.accumulation;
  if (!o.export_hf.empty() && lead) {
    save_hf_gpt2(o.export_hf, model);
    std::fprintf(stderr, "aios train: exported %s (Hugging Face GPT-2 format)\n", o.export_hf.c_str());
  }
  if (!summary.last_checkpoint.empty() && lead) std::fprintf(stderr, "aios train: saved %s\n", summary.last_checkpoint.c_str());
  return summary;
}

}  // namespace aios
