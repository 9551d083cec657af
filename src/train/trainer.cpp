#include "train/trainer.h"

#include <torch/version.h>

#include <bit>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>

#include "base/error.h"
#include "base/files.h"
#include "base/utf8.h"
#include "infer/generate.h"
#include "io/checkpoint.h"
#include "io/metrics_log.h"
#include "model/hf_gpt2.h"
#include "plan/memory_plan.h"
#include "train/device_stats.h"
#include "train/setup.h"
#include "train/step_profiler.h"
#include "train/stop_signals.h"
#include "train/train_step.h"

namespace aios {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

// This rank's next `count` windows as one [count, window + 1] int64 tensor on the device.
torch::Tensor read_windows(ShardDataset& data, std::int64_t count, const torch::Device& device) {
  auto windows = torch::empty({count, data.window_tokens()}, torch::kLong);
  data.next_windows(count, windows.data_ptr<std::int64_t>());
  return device.is_cpu() ? windows : windows.pin_memory().to(device, /*non_blocking=*/true);
}

// Mean loss per token over the same validation windows whatever the micro-batch (it shrinks after
// an out-of-memory) and however a global batch is split over ranks: the first --eval-batches ×
// --batch-size × ranks windows of the val split in shard order (all of them if it holds fewer),
// dealt round-robin to the ranks.
// Each rank runs its share `micro_batch` windows at a time; the sum over ranks is returned on every
// rank.
double evaluate(TrainingSetup& run, std::int64_t micro_batch) {
  torch::NoGradGuard no_grad;
  AutocastRegion autocast(run.device.type(), run.precision.enabled, run.precision.dtype);
  const ShardDataset& val = *run.val_data;
  const std::int64_t t = val.window_tokens() - 1, rank = run.comm->rank(), world = run.comm->world();
  const std::int64_t windows =
      std::min(run.options.run.eval_batches * run.options.data.batch_size * world, val.windows_per_epoch());
  std::vector<std::int64_t> mine;
  for (std::int64_t w = rank; w < windows; w += world) mine.push_back(w);
  run.model->eval();
  auto total = torch::zeros({}, torch::TensorOptions(run.device).dtype(torch::kDouble));
  for (std::size_t first = 0; first < mine.size(); first += static_cast<std::size_t>(micro_batch)) {
    const std::size_t count = std::min(mine.size() - first, static_cast<std::size_t>(micro_batch));
    auto batch = torch::empty({static_cast<std::int64_t>(count), t + 1}, torch::kLong);
    for (std::size_t i = 0; i < count; ++i) val.read_window(mine[first + i], batch[i].data_ptr<std::int64_t>());
    if (!run.device.is_cpu()) batch = batch.pin_memory().to(run.device, /*non_blocking=*/true);
    total += run.model->loss_sum(batch.slice(1, 0, t), batch.slice(1, 1, t + 1)).to(torch::kDouble);
  }
  run.model->train();
  const double sum = total.item<double>();                                  // sync
  return run.comm->sum_over_ranks(sum) / static_cast<double>(windows * t);  // collective (host)
}

// A short continuation of --sample-prompt by the model as it is now. Its own seed per step, drawn
// on the CPU: training's random state is not touched.
std::string sample_text(TrainingSetup& run, std::int64_t step) {
  const GptConfig& config = run.config;
  SamplingOptions sampling;
  sampling.max_new_tokens = run.options.run.sample_tokens;
  if (!config.rope()) {
    sampling.max_new_tokens = std::min<std::int64_t>(
        sampling.max_new_tokens, config.max_positions - static_cast<std::int64_t>(run.sample_prompt.size()));
  }
  sampling.temperature = 1.0;
  sampling.top_k = 40;
  sampling.seed = run.options.run.seed + static_cast<std::uint64_t>(step);
  sampling.stop_id = run.tokenizer->end_of_text_id();
  sampling.precision = run.precision;
  auto tokens = generate(run.model, run.sample_prompt, 1, sampling).tokens.front();
  if (sampling.stop_id && !tokens.empty() && tokens.back() == *sampling.stop_id) tokens.pop_back();
  return with_invalid_utf8_replaced(run.options.run.sample_prompt + run.tokenizer->decode(tokens));
}

// The first JSONL line: what this run is, enough to compare runs without their command lines.
json header_record(const TrainingSetup& run) {
  const GptConfig& config = run.config;
  const TrainOptions& o = run.options;
  json header = {{"type", "config"},
                 {"aios_version", AIOS_VERSION},
                 {"libtorch_version", std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) +
                                          "." + std::to_string(TORCH_VERSION_PATCH)},
                 {"device", device_name(run.device)},
                 {"attention",
                  {{"requested", to_string(run.attention.requested)},
                   {"backend", run.attention.backend},
                   {"note", run.attention.note}}},
                 {"model",
                  {{"preset", o.model.init_from.empty() ? o.model.preset : "hf:" + o.model.init_from},
                   {"n_layer", config.n_layer},
                   {"n_head", config.n_head},
                   {"n_embd", config.n_embd},
                   {"vocab_size", config.vocab_size},
                   {"max_positions", config.max_positions},
                   {"position", to_string(config.position)},
                   {"parameters", config.parameter_count()},
                   {"dtype", to_string(o.model.dtype)}}},
                 {"data",
                  {{"dataset_file", o.data.dataset_file},
                   {"tokenizer", run.shards->manifest().tokenizer.kind},
                   {"train_tokens", run.shards->manifest().tokens("train")},
                   {"val_tokens", run.shards->manifest().tokens("val")}}},
                 {"options", to_json(o)},
                 {"memory_techniques",
                  {{"amp", run.precision.describe()},
                   {"optimizer", run.optimizer->kind()},
                   {"optimizer_state_bytes", run.optimizer->state_bytes()}}},
                 {"distributed",
                  {{"comm", run.comm->describe()},
                   {"world", run.comm->world()},
                   {"gradient_sync", run.gradient_sync->describe()},
                   {"sharded_optimizer", run.gradient_sync->shards_optimizer_state()},
                   // collective (host): every rank's optimizer state
                   {"optimizer_state_bytes_per_rank", run.comm->gather_values(run.optimizer->state_bytes())}}},
                 {"cuda_graphs", run.step_graph ? "on" : run.step_graph_note},
                 {"resumed_from_step", run.progress.step}};
  if (!run.chunk_attention.empty()) header["attention"]["chunks_after_the_first"] = run.chunk_attention;
  return header;
}

// What the run is, in two lines on the terminal.
void print_run(const TrainingSetup& run, std::int64_t tokens_per_step) {
  const TrainOptions& o = run.options;
  const std::int64_t world = run.comm->world();
  if (run.chunking) {
    const bool truncated = run.chunking->mode == ChunkMode::kTruncated;
    std::fprintf(stderr, "aios train: chunked training (%s), %lld-token chunks%s; later chunks' attention: %s\n",
                 to_string(run.chunking->mode).c_str(), static_cast<long long>(o.memory.chunk_size),
                 truncated ? "; no gradient crosses a chunk boundary" : "; whole-window gradients",
                 run.chunk_attention.c_str());
    if (!truncated && o.memory.gradient_checkpointing) {
      std::fprintf(stderr,
                   "aios train: note: exact chunks are recomputed in their backward pass already; checkpointing "
                   "their blocks too adds a third forward. --no-gradient-checkpointing is faster for one chunk's "
                   "activations more memory\n");
    }
  }
  std::fprintf(stderr, "aios train: %s (%.2fM parameters) on %s%s, %lld tokens per step%s\n",
               run.config.describe().c_str(), run.config.parameter_count() / 1e6, device_name(run.device).c_str(),
               world > 1 ? (" x " + std::to_string(world) + " ranks (" + run.comm->describe() + ")").c_str() : "",
               static_cast<long long>(tokens_per_step),
               run.resumed ? (", resumed at step " + std::to_string(run.progress.step)).c_str() : "");
  std::fprintf(stderr, "aios train: precision %s | attention %s (%s)%s | optimizer %s%s, state %s per rank\n",
               run.precision.describe().c_str(), run.attention.backend.c_str(),
               to_string(run.attention.requested).c_str(),
               run.attention.note.empty() ? "" : ("; " + run.attention.note).c_str(), run.optimizer->kind().c_str(),
               run.gradient_sync->shards_optimizer_state() ? " (ZeRO-1 sharded)" : "",
               format_bytes(static_cast<double>(run.optimizer->state_bytes())).c_str());
  if (run.device.is_cuda()) {
    if (run.step_graph) {
      std::fprintf(stderr,
                   "aios train: CUDA graphs: the step is captured after %d eager steps and replayed from then on\n",
                   StepGraph::kEagerStepsFirst);
    } else {
      std::fprintf(stderr, "aios train: CUDA graphs: %s\n", run.step_graph_note.c_str());
    }
  }
}

// A step that captured the CUDA graph, or failed to: one line and one event record.
void report_graph_capture(const TrainingSetup& run, MetricsLog& log, ProgressLine& progress_line, std::int64_t step,
                          StepStats::Graph graph) {
  const StepGraph& step_graph = *run.step_graph;
  progress_line.finish();
  if (graph == StepStats::Graph::kCaptured) {
    log.write({{"type", "event"},
               {"event", "cuda_graph_captured"},
               {"step", step},
               {"capture_seconds", step_graph.capture_seconds()},
               {"capture_peak_allocated_bytes", step_graph.capture_peak_bytes()}});
    if (run.lead) {
      std::fprintf(stderr, "aios train: step %lld captured as a CUDA graph in %.0f ms; later steps replay it\n",
                   static_cast<long long>(step), step_graph.capture_seconds() * 1e3);
    }
  } else {
    log.write({{"type", "event"}, {"event", "cuda_graph_failed"}, {"step", step}, {"reason", step_graph.failure()}});
    if (run.lead) {
      std::fprintf(stderr,
                   "aios train: step %lld could not be captured as a CUDA graph (%s); the run goes on eagerly\n",
                   static_cast<long long>(step), step_graph.failure().c_str());
    }
  }
}

void report_shrink(const TrainingSetup& run, MetricsLog& log, ProgressLine& progress_line, std::int64_t step,
                   const BatchShrink& shrink) {
  log.write({{"type", "event"},
             {"event", "batch_shrink"},
             {"step", step},
             {"reason", shrink.reason},
             {"ranks", shrink.failed},
             {"micro_batch_before", shrink.before.micro_batch},
             {"micro_batch", shrink.after.micro_batch},
             {"accumulation", shrink.after.accumulation},
             {"chunk_before", shrink.before.chunk_size},
             {"chunk", shrink.after.chunk_size}});
  const bool chunk_halved = shrink.after.chunk_size != shrink.before.chunk_size;
  progress_line.finish();
  std::fprintf(stderr,
               "aios train: rank %d: step %lld: out of memory on rank(s) %s at micro-batch %lld; "
               "retrying the same windows as %lld x %lld accumulation%s\n",
               run.comm->rank(), static_cast<long long>(step), shrink.failed_ranks.c_str(),
               static_cast<long long>(shrink.before.micro_batch), static_cast<long long>(shrink.after.micro_batch),
               static_cast<long long>(shrink.after.accumulation),
               chunk_halved ? (" (micro-batch already 1: chunk " + std::to_string(shrink.before.chunk_size) + " -> " +
                               std::to_string(shrink.after.chunk_size) + " tokens)")
                                  .c_str()
                            : "");
}

// Work between steps (evaluation, sampling): beside the step's CUDA graph, which it gives back
// where the work runs out of memory beside it (StepGraph::run_beside); said on the terminal and
// in the log.
template <typename Work>
void beside_step_graph(TrainingSetup& run, MetricsLog& log, ProgressLine& progress_line, std::int64_t step,
                       const std::string& what, const Work& work) {
  if (!run.step_graph) {
    work();
    return;
  }
  const std::string at_step = what + " at step " + std::to_string(step);
  if (!run.step_graph->run_beside(work, run.parameters, at_step)) return;
  log.write(
      {{"type", "event"}, {"event", "cuda_graph_released"}, {"step", step}, {"reason", run.step_graph->failure()}});
  if (run.lead) {
    progress_line.finish();
    std::fprintf(stderr,
                 "aios train: %s ran out of memory beside the CUDA graph; the graph's memory was given back, it ran "
                 "again, and later steps run eagerly\n",
                 at_step.c_str());
  }
}

std::string profile_path_of(const TrainingSetup& run) {
  const std::string& path = run.options.run.profile_file;
  if (path.empty() || run.comm->world() == 1) return path;
  return join_path(parent_path(path),
                   file_stem(path) + ".rank" + std::to_string(run.comm->rank()) + file_extension(path));
}

}  // namespace

TrainSummary train(const TrainOptions& options) {
  const StopSignals stop_signals;  // from here a signal stops the run at a step boundary, with a checkpoint
  TrainingSetup run(options);
  const RunOptions& o = run.options.run;
  const std::int64_t world = run.comm->world();
  const std::int64_t window = run.options.data.window_size;
  StepShape shape{run.options.data.batch_size, run.options.data.gradient_accumulation_steps,
                  run.options.memory.chunk_size};
  const std::int64_t windows_per_step = shape.micro_batch * shape.accumulation;  // per rank, never changes
  const std::int64_t tokens_per_step = windows_per_step * window * world;
  const double flops_per_step = run.config.training_flops_per_token(window) * static_cast<double>(tokens_per_step);
  const double peak_flops =
      (o.peak_tflops > 0 ? o.peak_tflops : default_peak_tflops(run.device, run.compute_dtype())) * 1e12;

  MetricsLog log(run.lead ? o.log_file : "", /*append=*/run.resumed);
  log.write(header_record(run));
  if (run.lead) print_run(run, tokens_per_step);
  // The planned peak (aios plan), compared with the measured one after the first step.
  const double planned_peak =
      run.device.is_cuda() ? plan_memory(run.config, run.options, {true, world}).peak_bytes : 0.0;
  if (run.lead && planned_peak > 0) {
    std::fprintf(stderr, "aios train: planned peak memory %s per rank (aios plan with these options itemizes it)\n",
                 format_bytes(planned_peak).c_str());
  }
  ProgressLine progress_line(o.log_every > 0 ? o.log_every : std::max<std::int64_t>(1, o.steps / 20),
                             /*quiet=*/!run.lead, /*plain_seconds=*/30);
  const std::string profile_path = profile_path_of(run);
  StepProfiler profiler(profile_path, o.profile_from, o.profile_steps, run.device);
  if (!o.profile_file.empty() && run.progress.step >= o.profile_from && run.lead) {
    std::fprintf(stderr, "aios train: note: no profile: the run resumes at step %lld, past --profile-from %lld\n",
                 static_cast<long long>(run.progress.step), static_cast<long long>(o.profile_from));
  }

  if (run.progress.step > o.steps) {
    throw Error("--steps",
                std::to_string(o.steps) + " is below the step of the checkpoint resumed (" +
                    std::to_string(run.progress.step) + ")",
                "--steps above " + std::to_string(run.progress.step) + " to train further");
  }
  if (run.progress.step == o.steps && run.lead) {
    std::fprintf(stderr, "aios train: nothing to train: the checkpoint resumed is already at step %lld (--steps)\n",
                 static_cast<long long>(o.steps));
  }

  TrainSummary summary;
  summary.attention_backend = run.attention.backend;
  TrainProgress& progress = run.progress;
  const std::int64_t first_step = progress.step + 1;
  const auto run_start = Clock::now();
  auto last_checkpoint_time = run_start;
  // The host does not wait for a step before it queues the next one: a step's loss and norm are read
  // (and its record written) once the next step is queued, so the GPU goes from one step's update
  // to the next step's forward while the host is still a step ahead. A step's time runs from the
  // previous step's loss read to its own; evaluation, sampling and checkpoints need the GPU idle
  // and the step's own weights, so the step before them is read at once (`planned_pause`), and
  // their time is left out.
  auto last_synced = run_start;
  double paused_seconds = 0;
  const auto paused = [&](const auto& work) {
    synchronize(run.device);  // sync: the update's time stays in the step's
    const auto start = Clock::now();
    work();
    paused_seconds += std::chrono::duration<double>(Clock::now() - start).count();
  };
  const auto evaluation_due = [&](std::int64_t step) {
    return (o.eval_interval > 0 && step % o.eval_interval == 0) || step == o.steps;
  };
  // From the options alone, so the same on every rank: every rank reads a step at the same point
  // of its loop, and the collectives of reading a step and of queuing the next keep one order.
  const auto planned_pause = [&](std::int64_t step) {
    return step == o.steps || (evaluation_due(step) && (o.eval_batches > 0 || !o.eval_hellaswag.empty())) ||
           (o.sample_every > 0 && step % o.sample_every == 0) ||
           (o.checkpoint_interval > 0 && step % o.checkpoint_interval == 0) || profiler.wants_idle_gpu_after(step);
  };
  // A step queued, not yet read, and what the loop knew of it when it was queued.
  struct QueuedStep {
    std::int64_t step;
    StepStats stats;
    StepShape shape;
    std::uint64_t cursor_after_step;
    MemoryStats memory;  // the allocator's counters of this step, taken before the next step allocates
  };
  // What the bookkeeping of a step read late found (a stop signal, a log that could not be written,
  // a timed checkpoint): every rank acts on it at the next step, which is then read at once.
  struct Carried {
    bool due = false, log_failure = false;
    int stop_signal = 0;
  } carried;

  // The bookkeeping of a step: its loss and norm, its record and progress line, and (unless the
  // next step is already queued: `late`) evaluation, sampling, checkpoint and stop. Returns true
  // when the run stops.
  const auto finish = [&](QueuedStep& queued, bool late) -> bool {
    const std::int64_t step = queued.step;
    StepStats& stats = queued.stats;
    const StepShape& step_shape = queued.shape;  // after any out-of-memory shrink in the step
    read_step_results(run, stats, step);         // sync, collective (host)
    for (const auto& shrink : stats.shrinks) report_shrink(run, log, progress_line, step, shrink);
    if (stats.graph == StepStats::Graph::kCaptured || stats.graph == StepStats::Graph::kCaptureFailed) {
      report_graph_capture(run, log, progress_line, step, stats.graph);
    }
    summary.batch_shrinks += static_cast<std::int64_t>(stats.shrinks.size());
    summary.skipped_steps += stats.skipped ? 1 : 0;
    if (step == first_step) summary.first_loss = stats.loss;
    summary.last_loss = stats.loss;
    progress.step = step;
    progress.data_cursor = queued.cursor_after_step;
    progress.tokens_seen += tokens_per_step;

    const double step_seconds = std::chrono::duration<double>(stats.synced_at - last_synced).count() - paused_seconds;
    last_synced = stats.synced_at;
    paused_seconds = 0;
    if (profiler.after_step(step) && run.lead) {
      progress_line.finish();
      std::fprintf(stderr, "aios train: profile of steps %lld-%lld written to %s\n",
                   static_cast<long long>(o.profile_from), static_cast<long long>(step),
                   world > 1 ? (profile_path + " (and one per rank beside it)").c_str() : profile_path.c_str());
    }
    const double tokens_per_second = static_cast<double>(tokens_per_step) / step_seconds;
    const double elapsed = std::chrono::duration<double>(Clock::now() - run_start).count();
    const double eta = elapsed / static_cast<double>(step - first_step + 1) * static_cast<double>(o.steps - step);

    json record = {{"type", "step"},
                   {"step", step},
                   {"loss", stats.loss},
                   {"lr", stats.lr},
                   {"grad_norm", std::isfinite(stats.grad_norm) ? json(stats.grad_norm) : json(nullptr)},
                   {"tokens", progress.tokens_seen},
                   {"tokens_per_s", tokens_per_second},
                   {"step_time_ms", step_seconds * 1e3},
                   {"micro_batch", step_shape.micro_batch},
                   {"accumulation", step_shape.accumulation},
                   {"mfu", peak_flops > 0 ? json(flops_per_step / step_seconds / peak_flops) : json(nullptr)}};
    if (run.step_graph) {
      record["cuda_graph"] = stats.graph == StepStats::Graph::kCaptured || stats.graph == StepStats::Graph::kReplayed;
    }
    if (run.scaler->enabled()) {
      record["loss_scale"] = stats.loss_scale;
      // Every rank's scale must stay equal (each changes it from the agreed inf/NaN finding); the
      // record shows them all so that a drift would be visible. Exact: doubles sent as their bits.
      if (world > 1) {
        std::vector<double> scales;
        for (const std::int64_t bits : run.comm->gather_values(std::bit_cast<std::int64_t>(stats.loss_scale)))
          scales.push_back(std::bit_cast<double>(bits));  // collective (host), above
        record["loss_scale_per_rank"] = scales;
      }
      record["skipped"] = stats.skipped;
    }
    const MemoryStats& memory = queued.memory;
    if (memory.available) {
      record["peak_allocated_bytes"] = memory.peak_allocated;
      record["peak_reserved_bytes"] = memory.peak_reserved;
      record["current_allocated_bytes"] = memory.current_allocated;
      if (world > 1)
        record["peak_allocated_bytes_per_rank"] = run.comm->gather_values(memory.peak_allocated);  // collective
      if (step == first_step) {
        record["planned_peak_bytes"] = planned_peak;
        if (run.lead) {
          progress_line.finish();
          std::fprintf(stderr, "aios train: measured peak memory %s at step %lld (planned %s)\n",
                       format_bytes(static_cast<double>(memory.peak_allocated)).c_str(), static_cast<long long>(step),
                       format_bytes(planned_peak).c_str());
        }
      }
    }

    const bool last = step == o.steps;
    const bool evaluate_now = evaluation_due(step) && !late;
    if (run.val_data && evaluate_now) {
      run.watchdog->beat(step, "evaluation");
      paused([&] {
        beside_step_graph(run, log, progress_line, step, "evaluation",
                          [&] { summary.last_val_loss = evaluate(run, step_shape.micro_batch); });
      });
      record["val_loss"] = summary.last_val_loss;
    }
    // Text in and out on rank 0 alone: the other ranks wait for it at the next collective.
    if (run.lead && evaluate_now && !run.hellaswag_items.empty()) {
      run.watchdog->beat(step, "multiple-choice evaluation");
      paused([&] {
        beside_step_graph(run, log, progress_line, step, "multiple-choice evaluation", [&] {
          const auto choice = evaluate_multiple_choice(run.model, *run.tokenizer, run.hellaswag_items, run.precision);
          record["hellaswag_acc"] = choice.accuracy();
          record["hellaswag_acc_norm"] = choice.accuracy_normalized();
        });
      });
    }
    if (run.lead && !late && o.sample_every > 0 && (step % o.sample_every == 0 || last)) {
      run.watchdog->beat(step, "sampling");
      paused([&] {
        beside_step_graph(run, log, progress_line, step, "sampling",
                          [&] { record["sample"] = sample_text(run, step); });
      });
      progress_line.finish();
      std::fprintf(stderr, "aios train: sample at step %lld: %s\n", static_cast<long long>(step),
                   json(record["sample"]).dump().c_str());
    }
    std::string log_failure;  // a full disk under --log-file: the step is good, so it is checkpointed first
    try {
      log.write(record);
    } catch (const Error& e) {
      log_failure = e.what();
    }

    char val_text[32] = "";
    if (record.contains("val_loss")) std::snprintf(val_text, sizeof(val_text), " val %.4f", summary.last_val_loss);
    char line[320];
    std::snprintf(
        line, sizeof(line), "step %lld/%lld | loss %.4f%s | lr %.2e | %.0f tok/s%s%s | ETA %s",
        static_cast<long long>(step), static_cast<long long>(o.steps), stats.loss, val_text, stats.lr,
        tokens_per_second,
        memory.available ? (" | peak " + format_bytes(static_cast<double>(memory.peak_allocated))).c_str() : "",
        stats.skipped ? " | skipped: inf/NaN gradients, loss scale lowered" : "", format_duration(eta).c_str());
    progress_line.update(line, record.contains("val_loss") || stats.skipped);

    // Whether any rank was asked to stop, could not write its log, or is due a timed checkpoint:
    // one small host collective, so that every rank writes its part of a checkpoint, and stops,
    // at the same step.
    const double minutes = std::chrono::duration<double>(Clock::now() - last_checkpoint_time).count() / 60.0;
    const bool due_by_time = o.checkpoint_minutes > 0 && minutes >= o.checkpoint_minutes;
    bool any_due = false, any_log_failure = false;
    int stop_signal = 0;
    for (const std::int64_t flags : run.comm->gather_values(4 * std::int64_t{stop_signals.received()} +
                                                            (log_failure.empty() ? 0 : 2) + (due_by_time ? 1 : 0))) {
      any_due = any_due || (flags & 1) != 0;  // collective (host), above
      any_log_failure = any_log_failure || (flags & 2) != 0;
      stop_signal = std::max(stop_signal, static_cast<int>(flags / 4));
    }
    if (late) {  // this step's weights are gone: the next step acts on what was found
      carried.due = carried.due || any_due;
      carried.log_failure = carried.log_failure || any_log_failure;
      carried.stop_signal = std::max(carried.stop_signal, stop_signal);
      return false;
    }
    any_due = any_due || carried.due;
    any_log_failure = any_log_failure || carried.log_failure;
    stop_signal = std::max(stop_signal, carried.stop_signal);
    carried = Carried{};
    if (last) stop_signal = 0;
    if ((o.checkpoint_interval > 0 && step % o.checkpoint_interval == 0) || last || any_due || any_log_failure ||
        stop_signal != 0) {
      run.watchdog->beat(step, "writing a checkpoint");
      paused([&] {
        summary.last_checkpoint = save_checkpoint(o.out_dir, *run.model, *run.optimizer, *run.scaler, progress,
                                                  run.checkpoint_metadata, *run.comm,
                                                  run.gradient_sync->shards_optimizer_state());  // collective
        if (run.lead) prune_checkpoints(o.out_dir, o.keep_last, o.keep_every);  // after every rank's part is in place
      });
      last_checkpoint_time = Clock::now();
    }
    if (any_log_failure) {
      progress_line.finish();
      throw Error(o.log_file,
                  "could not be written (disk full?); a checkpoint of step " + std::to_string(step) +
                      " was written first: " + summary.last_checkpoint,
                  "free space under the log, then --resume latest");
    }
    if (stop_signal != 0) {
      summary.stop_signal = stop_signal;
      log.write({{"type", "event"}, {"event", "stopped"}, {"step", step}, {"signal", StopSignals::name(stop_signal)}});
      if (run.lead) {
        progress_line.finish();
        std::fprintf(stderr,
                     "aios train: stopped by %s after step %lld of %lld; checkpoint %s written; continue with "
                     "--resume latest (or --resume auto) and the same --out-dir\n",
                     StopSignals::name(stop_signal), static_cast<long long>(step), static_cast<long long>(o.steps),
                     summary.last_checkpoint.c_str());
      }
      return true;
    }
    return false;
  };

  torch::Tensor next_windows;  // read during the previous step
  std::optional<QueuedStep> unread;
  for (std::int64_t step = first_step; step <= o.steps; ++step) {
    profiler.before_step(step);
    reset_peak_memory(run.device);
    const torch::Tensor windows =
        next_windows.defined() ? next_windows : read_windows(*run.train_data, windows_per_step, run.device);

    // The next step's windows are read from disk and copied to the device while the GPU runs this
    // step's backward; the cursor before that read is this step's, so its checkpoint resumes at them.
    std::uint64_t cursor_after_step = 0;
    const auto read_next_windows = [&] {
      cursor_after_step = run.train_data->cursor();
      next_windows = step < o.steps ? read_windows(*run.train_data, windows_per_step, run.device) : torch::Tensor();
    };
    QueuedStep queued{step, train_step(run, shape, step, windows, read_next_windows), shape, 0, {}};
    queued.cursor_after_step = cursor_after_step;
    queued.memory = memory_stats(run.device);
    if (queued.stats.graph == StepStats::Graph::kReplayed) {
      // A replay allocates nothing: the step's peak is the capture's, held in the graph's pool.
      queued.memory.peak_allocated = std::max(queued.memory.peak_allocated, run.step_graph->capture_peak_bytes());
    }
    if (unread) {
      finish(*unread, /*late=*/true);  // the previous step, read now that this one is queued
      unread.reset();
    }
    const bool act_on_carried = carried.due || carried.log_failure || carried.stop_signal != 0;
    if (!queued.stats.read && !planned_pause(step) && !act_on_carried) {
      unread = std::move(queued);  // read after the next step is queued
    } else if (finish(queued, /*late=*/false)) {
      break;
    }
  }
  progress_line.finish();
  summary.steps_done = progress.step;
  summary.micro_batch = shape.micro_batch;
  summary.accumulation = shape.accumulation;
  if (summary.stop_signal != 0) {
    if (!o.export_hf.empty() && run.lead) {
      std::fprintf(stderr, "aios train: no export to %s: the run stopped before its last step\n", o.export_hf.c_str());
    }
    return summary;
  }
  if (!o.export_hf.empty() && run.lead) {
    save_hf_gpt2(o.export_hf, run.model);
    std::fprintf(stderr, "aios train: exported %s (Hugging Face GPT-2 format)\n", o.export_hf.c_str());
  }
  if (!summary.last_checkpoint.empty() && run.lead)
    std::fprintf(stderr, "aios train: saved %s\n", summary.last_checkpoint.c_str());
  return summary;
}

}  // namespace aios
