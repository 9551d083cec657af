#include "train/stop_signals.h"

#include <unistd.h>

#include <csignal>

namespace aios {
namespace {

constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1};
volatile std::sig_atomic_t g_received = 0;
struct sigaction g_previous[sizeof(kSignals) / sizeof(kSignals[0])];

// Async-signal-safe: a flag, write(2), and for a second Ctrl-C the default action re-raised.
void on_signal(int signal) {
  if (g_received != 0 && signal == SIGINT) {
    std::signal(SIGINT, SIG_DFL);
    std::raise(SIGINT);
    return;
  }
  if (g_received == 0) {
    g_received = signal;
    constexpr char kMessage[] =
        "\naios train: stop requested: finishing this step, then writing a checkpoint (Ctrl-C again to quit at "
        "once)\n";
    [[maybe_unused]] const auto written = ::write(STDERR_FILENO, kMessage, sizeof(kMessage) - 1);
  }
}

}  // namespace

StopSignals::StopSignals() {
  g_received = 0;
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // a read or write in progress is resumed, not failed with EINTR
  for (std::size_t i = 0; i < sizeof(kSignals) / sizeof(kSignals[0]); ++i) {
    sigaction(kSignals[i], nullptr, &g_previous[i]);
    // A signal ignored when aios started stays ignored (`nohup aios train` keeps running when its
    // terminal closes), as is the convention for programs that catch signals.
    if (g_previous[i].sa_handler != SIG_IGN) sigaction(kSignals[i], &action, nullptr);
  }
}

StopSignals::~StopSignals() {
  for (std::size_t i = 0; i < sizeof(kSignals) / sizeof(kSignals[0]); ++i)
    sigaction(kSignals[i], &g_previous[i], nullptr);
}

int StopSignals::received() const { return g_received; }

const char* StopSignals::name(int signal) {
  switch (signal) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    case SIGHUP:
      return "SIGHUP";
    case SIGUSR1:
      return "SIGUSR1";
    default:
      return "a signal";
  }
}

}  // namespace aios
