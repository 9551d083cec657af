// A rank whose peer hangs (stuck in a kernel, a deadlock, a lost node that did not die) waits
// forever inside the next collective: neither NCCL nor MPI gives up on its own. The watchdog is a
// thread that expects a heartbeat from the training loop at least every `timeout` seconds. When
// none comes it prints the rank, the step and what the rank was doing, and ends the process;
// mpirun then ends every other rank (as it does when a rank dies). Ending the process from the
// watchdog thread needs no MPI call (MPI is initialized MPI_THREAD_FUNNELED).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace aios {

class HangWatchdog {
 public:
  static constexpr int kExitStatus = 4;

  // timeout_seconds <= 0: off (no thread).
  HangWatchdog(int rank, double timeout_seconds);
  ~HangWatchdog();
  HangWatchdog(const HangWatchdog&) = delete;
  HangWatchdog& operator=(const HangWatchdog&) = delete;

  // The loop is alive: in `step` (1-based), now doing `doing` (a string literal).
  void beat(std::int64_t step, const char* doing);

 private:
  void watch();

  using Clock = std::chrono::steady_clock;
  const int rank_;
  const std::chrono::duration<double> timeout_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  Clock::time_point last_beat_;
  std::int64_t step_ = 0;
  const char* doing_ = "starting";
  std::thread thread_;
};

}  // namespace aios
