#include "train/train_step.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>

#include "base/error.h"
#include "memory/chunked_training.h"
#include "train/device_stats.h"

namespace aios {
namespace {

// Forward and backward over the step's micro-batches; gradients accumulate in the parameters and
// the gradient sync starts during the last backward. Each micro-batch adds (sum of its token
// losses) / (tokens of the whole step, every rank's), so the summed gradient is the step's mean
// whatever the split into micro-batches and ranks. Returns this rank's share of the mean loss, a
// device scalar.
torch::Tensor forward_backward(TrainingSetup& run, const torch::Tensor& windows, const StepShape& shape,
                               std::int64_t step) {
  const std::int64_t window = windows.size(1) - 1;
  const double step_tokens = static_cast<double>(windows.size(0) * window * run.comm->world());
  const auto scaled = [&](const torch::Tensor& loss_sum) { return run.scaler->scale(loss_sum / step_tokens); };
  // Collectives: once started, each bucket's all-reduce or reduce-scatter goes out from the
  // backward as soon as its gradients are final (on GPUs on NCCL's stream, beside the backward).
  const auto start_gradient_sync = [&] { run.gradient_sync->start(); };
  auto loss = torch::zeros({}, torch::TensorOptions(run.device).dtype(torch::kDouble));
  for (std::int64_t micro = 0; micro < shape.accumulation; ++micro) {
    const bool last = micro + 1 == shape.accumulation;
    const auto batch = windows.narrow(0, micro * shape.micro_batch, shape.micro_batch);
    const auto tokens = batch.slice(1, 0, window), targets = batch.slice(1, 1, window + 1);
    if (run.chunking) {  // forward and backward chunk by chunk inside
      run.faults.before_backward(step, micro);
      ChunkedTraining chunking = *run.chunking;
      chunking.chunk = shape.chunk_size;
      const auto summed = chunked_forward_backward(run.model, tokens, targets, chunking, run.precision, scaled,
                                                   last ? start_gradient_sync : std::function<void()>([] {}));
      loss += summed.to(torch::kDouble) / step_tokens;
    } else {
      torch::Tensor share;
      {
        AutocastRegion autocast(run.device.type(), run.precision.enabled, run.precision.dtype);
        share = run.model->loss_sum(tokens, targets) / step_tokens;
      }
      run.faults.before_backward(step, micro);
      if (last) start_gradient_sync();
      run.scaler->scale(share).backward();
      loss += share.detach().to(torch::kDouble);
    }
    run.faults.after_backward(step, micro);
  }
  return loss;
}

void clear_gradients(std::vector<torch::Tensor>& parameters) {
  for (auto& p : parameters) p.mutable_grad() = torch::Tensor();  // the next backward writes, not adds
}

// Unscales (fp16) and clips the summed gradients; returns their global norm before clipping, a
// device scalar.
torch::Tensor unscale_and_clip(TrainingSetup& run) {
  const auto gradients = run.optimizer->gradients();
  run.scaler->unscale(gradients);
  const auto norm = run.gradient_sync->global_norm(gradients);  // collective under ZeRO-1 (on the device)
  run.optimizer->clip_gradients(run.options.optimizer.grad_clip, norm);
  return norm;
}

void apply_update(TrainingSetup& run) {
  run.optimizer->step();
  run.gradient_sync->after_update();  // collective under ZeRO-1: the updated shards to every rank
}

// The whole step as the GPU runs it when nothing in it waits for the host (no fp16 loss scaling,
// one rank): what the CUDA graph captures. The eager path in train_step runs the same pieces
// around its out-of-memory recovery and the fp16 decision.
StepOutputs queue_step(TrainingSetup& run, const torch::Tensor& windows, const StepShape& shape, std::int64_t step) {
  clear_gradients(run.parameters);
  StepOutputs outputs;
  outputs.loss = forward_backward(run, windows, shape, step);
  run.gradient_sync->finish();
  outputs.grad_norm = unscale_and_clip(run);
  apply_update(run);
  return outputs;
}

}  // namespace

StepStats train_step(TrainingSetup& run, StepShape& shape, std::int64_t step, const torch::Tensor& windows,
                     const std::function<void()>& while_backward_runs) {
  StepStats stats;
  stats.lr = run.schedule.at(step - 1);
  run.optimizer->set_learning_rate(stats.lr);  // on a GPU also queued to the device scalar the update reads

  // CUDA graph (train/step_graph.h): queue_step's kernels, captured once and launched as one, with
  // no host work, collective or sync inside. A capture that fails leaves this and every later step
  // to the eager path below.
  if (run.step_graph && run.step_graph->replays(shape)) {
    run.watchdog->beat(step, "the step's CUDA graph");
    const bool capture = !run.step_graph->captured();
    const auto outputs = run.step_graph->replay(windows, [&](const torch::Tensor& graph_windows) {
      return queue_step(run, graph_windows, shape, step);
    });  // sync when it captures
    stats.graph = !outputs  ? StepStats::Graph::kCaptureFailed
                  : capture ? StepStats::Graph::kCaptured
                            : StepStats::Graph::kReplayed;
    if (outputs) {
      if (while_backward_runs) while_backward_runs();  // host work while the GPU runs the step
      stats.loss_on_device = outputs->loss;
      stats.grad_norm_on_device = outputs->grad_norm;
      return stats;
    }
  }

  // Forward and backward on every rank, gradient buckets going out during the last backward. A
  // rank that runs out of memory still issues every bucket's collective (finish), so no peer waits
  // on it; then all ranks agree, and on out-of-memory anywhere every rank drops the attempt and
  // re-runs the same windows with a smaller micro-batch.
  torch::Tensor loss;  // this rank's share of the step's mean loss
  for (;;) {
    run.watchdog->beat(step, "forward/backward and gradient communication");
    run.faults.at_step_start(step);
    clear_gradients(run.parameters);
    std::string out_of_memory;
    try {
      loss = forward_backward(run, windows, shape, step);
    } catch (const c10::OutOfMemoryError& e) {  // the attempt's activations died with its stack frames
      const std::string what = e.what_without_backtrace();
      out_of_memory = "rank " + std::to_string(run.comm->rank()) + ": " + what.substr(0, what.find('\n'));
    }
    run.gradient_sync->finish();  // collective: every bucket, also those a failed attempt never started
    const auto failed = run.comm->gather_values(out_of_memory.empty() ? 0 : 1);  // collective (host)
    if (std::all_of(failed.begin(), failed.end(), [](std::int64_t f) { return f == 0; })) break;

    clear_gradients(run.parameters);
    loss = torch::Tensor();
    release_cached_memory(run.device);  // sync: the cache is returned once the device is idle
    std::string ranks;
    for (std::size_t r = 0; r < failed.size(); ++r) {
      if (failed[r] != 0) ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
    }
    const std::string reason = out_of_memory.empty() ? "out of memory on rank " + ranks : out_of_memory;
    const StepShape smaller = shrink_after_oom(shape, run.options, step, reason);  // throws at the floor
    stats.shrinks.push_back({reason, failed, ranks, shape, smaller});
    shape = smaller;
  }
  if (while_backward_runs) while_backward_runs();  // host work while the GPU runs the backward
  run.faults.after_gradient_sync(step, loss, run.optimizer->gradients());

  // Unscale, clip and update. Under fp16 the update is skipped on every rank when any rank's
  // gradients hold inf/NaN (the scale then backs off), so it waits for that finding. Otherwise
  // nothing decides on the update but a non-finite loss or norm, which stops the run without
  // saving this step: the update is queued and the step returns unread, so that the GPU goes from
  // this step's update to the next step's forward without idling on the host's round trip.
  run.watchdog->beat(step, "gradient norm, optimizer step and parameter all-gather");
  const auto norm = unscale_and_clip(run);  // collective under ZeRO-1 (on the device)
  stats.loss_on_device = loss;
  stats.grad_norm_on_device = norm;
  if (!run.scaler->enabled()) {
    apply_update(run);
    return stats;
  }
  read_step_results(run, stats, step);                                                     // sync, collective
  const bool overflow = run.comm->agree_max(run.scaler->found_non_finite() ? 1 : 0) != 0;  // sync, collective
  stats.skipped = overflow || !std::isfinite(stats.grad_norm);
  if (!stats.skipped) apply_update(run);
  stats.loss_scale = run.scaler->current_scale();  // sync
  run.scaler->update(overflow);                    // the agreed finding: every rank's scale changes alike
  return stats;
}

void read_step_results(TrainingSetup& run, StepStats& stats, std::int64_t step) {
  if (stats.read) return;
  stats.grad_norm = stats.grad_norm_on_device.item<double>();                  // sync
  stats.loss = run.comm->sum_over_ranks(stats.loss_on_device.item<double>());  // sync, collective (host)
  stats.synced_at = std::chrono::steady_clock::now();
  stats.read = true;
  if (!std::isfinite(stats.loss) || (!std::isfinite(stats.grad_norm) && !run.scaler->enabled())) {
    throw Error("step " + std::to_string(step),
                "loss is " + std::to_string(stats.loss) + " and gradient norm " + std::to_string(stats.grad_norm) +
                    "; the run stops without saving this step, and the last checkpoint is kept",
                "a lower --lr, more --warmup-steps or --grad-clip; resume with --resume latest");
  }
}

}  // namespace aios
