// `aios train`: the training loop on one device (CPU or one CUDA GPU).
#pragma once

#include <string>

#include "train/train_options.h"

namespace aios {

struct TrainSummary {
  std::int64_t steps_done = 0;
  double first_loss = 0;
  double last_loss = 0;
  double last_val_loss = -1;  // -1 when there was no validation
  std::string last_checkpoint;
};

TrainSummary run_training(const TrainOptions& options);

}  // namespace aios
