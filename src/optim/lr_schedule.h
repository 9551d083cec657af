// Learning rate at an optimizer step: linear warmup to the peak, then cosine decay to the floor.
#pragma once

#include <cstdint>

namespace aios {

struct LrSchedule {
  double peak = 0;
  double floor = 0;
  std::int64_t warmup_steps = 0;
  std::int64_t total_steps = 0;

  // step counts from 0; step warmup_steps - 1 reaches the peak, the last step reaches the floor.
  double at(std::int64_t step) const;
};

}  // namespace aios
