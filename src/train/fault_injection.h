// Fault injection for tests and GPU drills, read once from the environment. Each fault makes a
// chosen optimizer step (1-based) fail the way a real run can, so the recovery paths run on the CPU:
//   AIOS_FAULT_NAN_LOSS_AT_STEP=N   the step's loss becomes NaN (the run stops, checkpoint kept)
//   AIOS_FAULT_INF_GRAD_AT_STEP=N   one gradient element becomes inf (fp16 scaler skips the step)
//   AIOS_FAULT_OOM_AT_STEP=N        a c10::OutOfMemoryError after the step's first backward
//                                   (AIOS_FAULT_OOM_IN=forward: before it, so peers are already
//                                   inside their overlapped gradient collectives),
//   AIOS_FAULT_OOM_TIMES=K          on K attempts of that step (default 1)
//   AIOS_FAULT_RANK=R               the OOM, exit and hang faults fire on rank R only (default: all)
//   AIOS_FAULT_EXIT_AT_STEP=N       the process exits with status 3 in the middle of step N
//   AIOS_FAULT_HANG_AT_STEP=N       the process stops making progress (sleeps) at the start of step N
//   AIOS_FAULT_MEMORY_GIB=G         the GPU's caching allocator may hold at most G GiB (a real
//                                   out-of-memory on one rank, as on a GPU shared with another job)
#pragma once

#include <cstdint>
#include <optional>

namespace aios {

struct FaultInjection {
  std::optional<std::int64_t> nan_loss_step;
  std::optional<std::int64_t> inf_grad_step;
  std::optional<std::int64_t> oom_step;
  std::int64_t oom_times = 1;
  bool oom_in_forward = false;
  std::optional<std::int64_t> rank;  // none: every rank
  std::optional<std::int64_t> exit_step;
  std::optional<std::int64_t> hang_step;
  std::optional<double> memory_limit_gib;

  bool on_rank(int r) const { return !rank || *rank == r; }

  static FaultInjection from_environment();
};

}  // namespace aios
