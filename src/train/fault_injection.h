// Fault injection for tests and GPU drills, read once from the environment, and only when the run
// asks for it (`--fault-injection`, hidden): otherwise the variables are ignored, with a note. Each fault makes a
// chosen optimizer step (1-based) fail the way a real run can, so the recovery paths run on the CPU:
//   AIOS_FAULT_NAN_LOSS_AT_STEP=N   the step's loss becomes NaN (the run stops, checkpoint kept)
//   AIOS_FAULT_INF_GRAD_AT_STEP=N   one gradient element becomes inf (fp16 scaler skips the step)
//   AIOS_FAULT_OOM_AT_STEP=N        a c10::OutOfMemoryError after the step's first backward
//                                   (AIOS_FAULT_OOM_IN=forward: before it, so peers are already
//                                   inside their overlapped gradient collectives; =mid-backward:
//                                   in the backward, when the gradient of the parameter in the
//                                   middle of the model arrives, after later layers' buckets went out),
//   AIOS_FAULT_OOM_TIMES=K          on K attempts of that step (default 1)
//   AIOS_FAULT_RANK=R               the OOM, exit, hang, signal and inf-gradient faults fire on rank R
//                                   only (default: all)
//   AIOS_FAULT_EXIT_AT_STEP=N       the process exits with status 3 in the middle of step N
//   AIOS_FAULT_HANG_AT_STEP=N       the process stops making progress (sleeps) at the start of step N
//                                   (N = 0, as the exit and signal faults: in start-up, before the
//                                   first broadcast of the weights)
//   AIOS_FAULT_SIGNAL_AT_STEP=N     the process sends itself AIOS_FAULT_SIGNAL (INT, TERM, HUP or
//                                   USR1; default TERM) at the start of step N, as a user or Slurm would
//   AIOS_FAULT_MEMORY_GIB=G         the GPU's caching allocator may hold at most G GiB (a real
//                                   out-of-memory on one rank, as on a GPU shared with another job)
// The training step calls one hook per place where a fault can strike; a hook with nothing armed
// for that step returns at once.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace aios {

class FaultInjector {
 public:
  static constexpr int kExitStatus = 3;

  // The faults this process (`rank`) is to suffer: none unless `enabled`.
  static FaultInjector from_environment(int rank, bool enabled);

  // The AIOS_FAULT_* variables set in this process's environment, by name.
  static std::vector<std::string> variables_set();

  // Hook points of a training step (1-based `step`, 0-based micro-batch `micro`):
  void at_step_start(std::int64_t step);                        // exit, hang, signal
  void before_backward(std::int64_t step, std::int64_t micro);  // out of memory in the forward
  void after_backward(std::int64_t step, std::int64_t micro);   // out of memory after the backward
  // After the gradients are summed: the loss (a device scalar) and the optimizer's gradients.
  void after_gradient_sync(std::int64_t step, at::Tensor& loss, const std::vector<at::Tensor>& gradients);

  std::optional<double> memory_limit_gib() const { return on_this_rank_ ? memory_limit_gib_ : std::nullopt; }

  // For AIOS_FAULT_OOM_IN=mid-backward: hooks the gradient of the parameter in the middle of
  // `parameters` (model order). The injector must outlive the parameters' backward passes.
  void arm_mid_backward(std::vector<at::Tensor>& parameters);

 private:
  enum class OomPlace { kForward, kAfterBackward, kMidBackward };
  void out_of_memory(std::int64_t step, std::int64_t micro, OomPlace place);

  std::optional<std::int64_t> nan_loss_step_, inf_grad_step_, oom_step_, exit_step_, hang_step_, signal_step_;
  int signal_ = 0;
  bool signal_sent_ = false;  // once: an out-of-memory retry starts the step again
  std::int64_t oom_times_ = 1, oom_fired_ = 0;
  OomPlace oom_place_ = OomPlace::kAfterBackward;
  std::int64_t current_step_ = 0, current_micro_ = 0;  // for the mid-backward hook
  bool on_this_rank_ = true;                           // AIOS_FAULT_RANK names this rank, or is unset
  int rank_ = 0;
  std::optional<double> memory_limit_gib_;
};

}  // namespace aios
