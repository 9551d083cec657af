// Binding of TrainOptions to flags; exposed so tests can check that a config file and the
// command line give the same options.
#pragma once

#include <CLI/CLI.hpp>

#include "train/train_options.h"

namespace aios::cli {

void bind_train_options(CLI::App& command, TrainOptions& options);

}  // namespace aios::cli
