// A graceful stop on SIGINT, SIGTERM, SIGHUP and SIGUSR1 (the signal Slurm's `--signal` usually
// sends before a job is preempted or reaches its time limit). The handler only records the signal;
// the training loop sees it after the current step, every rank agrees to stop at that step, a
// checkpoint is written, and `aios train` exits with status 128 + the signal's number (130 for
// Ctrl-C, 143 for SIGTERM, 129 for SIGHUP, 138 for SIGUSR1), the shell's convention for "ended by
// this signal", so that a script can tell a resumable stop from success (0) and failure (1).
// A signal that was ignored when aios started (SIGHUP under nohup) stays ignored. A second SIGINT
// ends the process at once, as Ctrl-C would without aios's handler; the last
// checkpoint written is intact (checkpoints are renamed into place only once complete).
#pragma once

namespace aios {

class StopSignals {
 public:
  StopSignals();   // installs the handlers for this process
  ~StopSignals();  // puts back the ones that were there
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  int received() const;  // the first of those signals received since construction, 0 for none

  static const char* name(int signal);  // "SIGTERM"
  static int exit_status(int signal) { return 128 + signal; }
};

}  // namespace aios
