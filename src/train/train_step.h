// One optimizer step: the step's micro-batches forward and backward, gradients summed over ranks,
// unscaled, clipped, and the update applied (or skipped, agreed by every rank). Out of memory on
// any rank drops the attempt on every rank and re-runs the same windows at a smaller micro-batch.
// On a GPU, from the third step on, the whole step is replayed from a CUDA graph captured from
// the same code (train/step_graph.h). The step holds no I/O and no logging: what happened comes
// back in StepStats for the loop to write. Every host synchronisation and every collective is
// marked where it happens.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "train/setup.h"
#include "train/step_shape.h"

namespace aios {

// An out-of-memory recovery inside a step.
struct BatchShrink {
  std::string reason;                // the first failing rank's error, or which ranks failed
  std::vector<std::int64_t> failed;  // per rank: 1 where it ran out of memory
  std::string failed_ranks;          // "1, 3"
  StepShape before, after;
};

struct StepStats {
  double lr = 0;  // the learning rate this step applied
  // Filled by read_step_results: until then the loss and norm are only on the device.
  bool read = false;
  double loss = 0;        // mean token loss over every rank's tokens
  double grad_norm = 0;   // global, before clipping; inf/NaN on a skipped fp16 step
  double loss_scale = 1;  // the fp16 loss scale this step ran with (1 without fp16)
  bool skipped = false;   // fp16: inf/NaN gradients, so the update was not applied
  // When the host had the loss and norm, i.e. had waited for the forward and backward; the update
  // is still running on the GPU when train_step returns.
  std::chrono::steady_clock::time_point synced_at;
  std::vector<BatchShrink> shrinks;
  // How the step ran with a CUDA graph (train/step_graph.h); a failed capture ran eagerly after it.
  enum class Graph { kEager, kCaptured, kReplayed, kCaptureFailed } graph = Graph::kEager;
  torch::Tensor loss_on_device, grad_norm_on_device;  // this rank's share of the loss; the norm
};

// Runs optimizer step `step` (1-based) on `windows`, this rank's [micro_batch · accumulation,
// window + 1] tokens of the step on the device, split as `shape` says; an out-of-memory recovery
// makes `shape` smaller (the windows stay the same). `while_backward_runs` is host work done once
// the forward and backward are queued, before the step first waits for the GPU (the trainer reads
// the next step's windows there).
//
// Without fp16 nothing decides on the update but a non-finite loss or norm, which stops the run
// anyway: the step returns with its update queued and its loss and norm unread (stats.read false),
// so that the caller can queue the next step before it waits for them with read_step_results.
// Under fp16 the update waits for the agreed inf/NaN finding, and the step returns them read.
StepStats train_step(TrainingSetup& run, StepShape& shape, std::int64_t step, const torch::Tensor& windows,
                     const std::function<void()>& while_backward_runs = {});

// Waits for a step's loss and gradient norm (a sync and a host collective, so every rank calls it
// for every step, in order) and stops the run on a non-finite one, without saving that step: the
// last checkpoint is kept.
void read_step_results(TrainingSetup& run, StepStats& stats, std::int64_t step);

}  // namespace aios
