// `aios train`: the training loop on one device.
#pragma once

#include "train/train_options.h"

namespace aios {

void run_training(const TrainOptions& options);

}  // namespace aios
