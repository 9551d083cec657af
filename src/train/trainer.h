// `aios train`: the training loop. It builds the run (train/setup.h), then for each step reads the
// step's windows, runs train_step (train/train_step.h), and around it does everything that is not
// the step: metrics records, the progress line, evaluation, checkpoints and the profiler.
#pragma once

#include <cstdint>
#include <string>

#include "train/train_options.h"

namespace aios {

struct TrainSummary {
  std::int64_t steps_done = 0;
  double first_loss = 0;
  double last_loss = 0;
  double last_val_loss = -1;       // -1 when there was no validation
  std::int64_t skipped_steps = 0;  // fp16 steps skipped for inf/NaN gradients
  std::int64_t batch_shrinks = 0;  // out-of-memory recoveries
  std::int64_t micro_batch = 0;    // the micro-batch at the end (after any shrink)
  std::int64_t accumulation = 0;
  std::string attention_backend;  // what SDPA ran: flash | efficient | cudnn | math
  std::string last_checkpoint;
  int stop_signal = 0;  // the signal that stopped the run early (train/stop_signals.h); 0 when it ran to the end
};

// Trains on one device, or on this rank's device under mpirun (every rank calls it).
TrainSummary train(const TrainOptions& options);

}  // namespace aios
