#include "distributed/hang_watchdog.h"

#include <cstdio>
#include <cstdlib>

namespace aios {

HangWatchdog::HangWatchdog(int rank, double timeout_seconds)
    : rank_(rank), timeout_(timeout_seconds), last_beat_(Clock::now()) {
  if (timeout_seconds > 0) thread_ = std::thread([this] { watch(); });
}

HangWatchdog::~HangWatchdog() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void HangWatchdog::beat(std::int64_t step, const char* doing) {
  if (!thread_.joinable()) return;
  std::lock_guard<std::mutex> lock(mutex_);
  last_beat_ = Clock::now();
  step_ = step;
  doing_ = doing;
}

void HangWatchdog::watch() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_) {
    wake_.wait_for(lock, std::chrono::milliseconds(500));
    if (stop_) return;
    const double silent = std::chrono::duration<double>(Clock::now() - last_beat_).count();
    if (silent < timeout_.count()) continue;
    std::fprintf(stderr,
                 "aios train: rank %d: no progress for %.0f s in step %lld (%s): a peer rank is stuck or "
                 "gone, or this one is; ending the job (--hang-timeout %.0f). The last checkpoint is intact.\n",
                 rank_, silent, static_cast<long long>(step_), doing_, timeout_.count());
    std::fflush(stderr);
    std::_Exit(kExitStatus);
  }
}

}  // namespace aios
