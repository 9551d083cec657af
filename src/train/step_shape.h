// The shape of one optimizer step (micro-batch x accumulation, and the chunk of chunked training)
// and how it shrinks after an out-of-memory without changing the step's data.
#pragma once

#include <cstdint>
#include <string>

#include "train/train_options.h"

namespace aios {

// Micro-batch and accumulation of one optimizer step; their product (the step's windows per rank)
// never changes, whatever an out-of-memory recovery does.
struct StepShape {
  std::int64_t micro_batch;
  std::int64_t accumulation;
  std::int64_t chunk_size;  // tokens per chunk with --chunked-training (0 without)
};

// The next shape after an out-of-memory: the micro-batch halves (to the largest divisor of the
// step's windows not above half, so the global batch stays exact) and accumulation grows to match;
// at micro-batch 1 with chunked training the chunk halves instead (exact mode: same gradients).
// When nothing is left to shrink, the error lists what would free memory.
StepShape shrink_after_oom(const StepShape& shape, const TrainOptions& options, std::int64_t step,
                           const std::string& what);

}  // namespace aios
