#include "train/fault_injection.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <thread>

#include "base/error.h"

namespace aios {
namespace {

std::optional<std::int64_t> read_step(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  try {
    return std::stoll(value);
  } catch (const std::exception&) {
    throw Error(name, std::string("value '") + value + "' is not a step number", "a positive integer");
  }
}

}  // namespace

std::vector<std::string> FaultInjector::variables_set() {
  std::vector<std::string> names;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string variable = *entry;
    if (variable.rfind("AIOS_FAULT_", 0) == 0) names.push_back(variable.substr(0, variable.find('=')));
  }
  return names;
}

FaultInjector FaultInjector::from_environment(int rank, bool enabled) {
  FaultInjector faults;
  faults.rank_ = rank;
  if (!enabled) return faults;
  faults.nan_loss_step_ = read_step("AIOS_FAULT_NAN_LOSS_AT_STEP");
  faults.inf_grad_step_ = read_step("AIOS_FAULT_INF_GRAD_AT_STEP");
  faults.oom_step_ = read_step("AIOS_FAULT_OOM_AT_STEP");
  faults.oom_times_ = read_step("AIOS_FAULT_OOM_TIMES").value_or(1);
  const auto only_rank = read_step("AIOS_FAULT_RANK");
  faults.on_this_rank_ = !only_rank || *only_rank == rank;
  const std::string where = std::getenv("AIOS_FAULT_OOM_IN") ? std::getenv("AIOS_FAULT_OOM_IN") : "";
  if (!where.empty() && where != "forward" && where != "backward" && where != "mid-backward") {
    throw Error("AIOS_FAULT_OOM_IN", "value '" + where + "' is not a place in the step",
                "forward, backward or mid-backward");
  }
  faults.oom_place_ = where == "forward"        ? OomPlace::kForward
                      : where == "mid-backward" ? OomPlace::kMidBackward
                                                : OomPlace::kAfterBackward;
  faults.exit_step_ = read_step("AIOS_FAULT_EXIT_AT_STEP");
  faults.hang_step_ = read_step("AIOS_FAULT_HANG_AT_STEP");
  faults.signal_step_ = read_step("AIOS_FAULT_SIGNAL_AT_STEP");
  const std::string signal = std::getenv("AIOS_FAULT_SIGNAL") ? std::getenv("AIOS_FAULT_SIGNAL") : "TERM";
  faults.signal_ = signal == "INT"    ? SIGINT
                   : signal == "TERM" ? SIGTERM
                   : signal == "HUP"  ? SIGHUP
                   : signal == "USR1" ? SIGUSR1
                                      : 0;
  if (faults.signal_ == 0) {
    throw Error("AIOS_FAULT_SIGNAL", "value '" + signal + "' is not a signal aios stops on", "INT, TERM, HUP or USR1");
  }
  if (const char* gib = std::getenv("AIOS_FAULT_MEMORY_GIB"); gib != nullptr && *gib != '\0') {
    char* end = nullptr;
    const double value = std::strtod(gib, &end);
    if (end == gib || *end != '\0' || !(value > 0)) {
      throw Error("AIOS_FAULT_MEMORY_GIB", std::string("value '") + gib + "' is not a size in GiB",
                  "a positive number");
    }
    faults.memory_limit_gib_ = value;
  }
  return faults;
}

void FaultInjector::at_step_start(std::int64_t step) {
  if (!on_this_rank_) return;
  if (hang_step_ == step) {
    std::fprintf(stderr, "aios train: rank %d: injected hang in step %lld (AIOS_FAULT_HANG_AT_STEP)\n", rank_,
                 static_cast<long long>(step));
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
  }
  if (signal_step_ == step && !signal_sent_) {
    signal_sent_ = true;
    std::fprintf(stderr, "aios train: rank %d: injected signal %d at step %lld (AIOS_FAULT_SIGNAL_AT_STEP)\n", rank_,
                 signal_, static_cast<long long>(step));
    std::raise(signal_);
  }
  if (exit_step_ == step) {
    std::fprintf(stderr, "aios train: rank %d: injected exit in step %lld (AIOS_FAULT_EXIT_AT_STEP)\n", rank_,
                 static_cast<long long>(step));
    ::_exit(kExitStatus);
  }
}

void FaultInjector::before_backward(std::int64_t step, std::int64_t micro) {
  current_step_ = step, current_micro_ = micro;
  out_of_memory(step, micro, OomPlace::kForward);
}
void FaultInjector::after_backward(std::int64_t step, std::int64_t micro) {
  out_of_memory(step, micro, OomPlace::kAfterBackward);
}

void FaultInjector::arm_mid_backward(std::vector<at::Tensor>& parameters) {
  if (!oom_step_ || oom_place_ != OomPlace::kMidBackward || parameters.empty()) return;
  parameters[parameters.size() / 2].register_hook([this](const at::Tensor& grad) {
    out_of_memory(current_step_, current_micro_, OomPlace::kMidBackward);
    return grad;
  });
}

void FaultInjector::out_of_memory(std::int64_t step, std::int64_t micro, OomPlace place) {
  if (!on_this_rank_ || oom_step_ != step || micro != 0 || place != oom_place_ || oom_fired_ >= oom_times_) {
    return;
  }
  ++oom_fired_;
  TORCH_CHECK_WITH(OutOfMemoryError, false, "injected out of memory (AIOS_FAULT_OOM_AT_STEP)");
}

void FaultInjector::after_gradient_sync(std::int64_t step, at::Tensor& loss, const std::vector<at::Tensor>& gradients) {
  if (nan_loss_step_ == step) loss.fill_(std::nan(""));
  if (inf_grad_step_ == step && on_this_rank_ && !gradients.empty()) {
    gradients.front().view({-1})[0].fill_(std::numeric_limits<double>::infinity());
  }
}

}  // namespace aios
