// Records chosen training steps with PyTorch's profiler (Kineto: operators on the CPU, kernels and
// copies on the GPU) and writes them as a Chrome trace, the same format torch.profiler writes, so
// aios and a PyTorch script can be compared kernel by kernel (bench/speed/trace_summary.py).
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <string>

namespace aios {

class StepProfiler {
 public:
  // Profiles steps [first, first + count) (1-based, as the logs count them) into `path`; an
  // empty path profiles nothing.
  StepProfiler(std::string path, std::int64_t first, std::int64_t count, const c10::Device& device);
  ~StepProfiler();
  StepProfiler(const StepProfiler&) = delete;
  StepProfiler& operator=(const StepProfiler&) = delete;

  void before_step(std::int64_t step);  // step: 1-based number of the step about to run
  // Returns true when this call wrote the trace.
  bool after_step(std::int64_t step);
  // Whether the loop should wait for `step` before it queues the next one: the profile starts and
  // ends with the GPU idle, so that it holds its steps' kernels and no others.
  bool wants_idle_gpu_after(std::int64_t step) const { return !path_.empty() && (step == first_ - 1 || step == last_); }

 private:
  std::string path_;
  std::int64_t first_, last_;
  bool cuda_;
  bool active_ = false;
};

}  // namespace aios
