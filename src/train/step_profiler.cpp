#include "train/step_profiler.h"

#include <torch/csrc/autograd/profiler_kineto.h>

#include <set>

#include "base/error.h"
#include "base/files.h"

namespace aios {
namespace {

namespace kineto = torch::autograd::profiler;
using torch::profiler::impl::ActivityType;
using torch::profiler::impl::ProfilerConfig;
using torch::profiler::impl::ProfilerState;

ProfilerConfig config() { return ProfilerConfig(ProfilerState::KINETO, /*report_input_shapes=*/true); }

std::set<ActivityType> activities(bool cuda) {
  std::set<ActivityType> kinds{ActivityType::CPU};
  if (cuda) kinds.insert(ActivityType::CUDA);
  return kinds;
}

}  // namespace

StepProfiler::StepProfiler(std::string path, std::int64_t first, std::int64_t count, const c10::Device& device)
    : path_(std::move(path)), first_(first), last_(first + count - 1), cuda_(device.is_cuda()) {
  if (path_.empty()) return;
  make_directories(parent_path(path_));  // fails now, not after the profiled steps ran
  // Setting the profiler up takes time (CUPTI); done here so the first profiled step does not pay it.
  kineto::prepareProfiler(config(), activities(cuda_));
}

StepProfiler::~StepProfiler() {
  if (active_) kineto::disableProfiler();  // a run that stopped early: drop the partial trace
}

void StepProfiler::before_step(std::int64_t step) {
  if (path_.empty() || step != first_) return;
  kineto::enableProfiler(config(), activities(cuda_));
  active_ = true;
}

bool StepProfiler::after_step(std::int64_t step) {
  if (!active_ || step != last_) return false;
  active_ = false;
  auto result = kineto::disableProfiler();
  // The profiler writes the file itself; write beside it and rename so no half-written trace is left.
  const std::string temporary = path_ + ".tmp";
  result->save(temporary);
  if (!is_regular_file(temporary)) {
    throw Error("--profile-file", "the profiler could not write " + temporary, "a writable path");
  }
  rename_path(temporary, path_);
  return true;
}

}  // namespace aios
