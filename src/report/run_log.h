// A run's JSONL metrics (--log-file) read back for reports: its configuration, one point per
// step, and the events to mark on the step axis (out-of-memory shrinks, resumes, stops). A run
// still in progress is read as far as it has been written: a last line cut mid-write is skipped.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace aios {

struct StepPoint {
  static constexpr double kNone = std::numeric_limits<double>::quiet_NaN();
  double step = 0, tokens = 0, loss = kNone, lr = kNone, tokens_per_s = kNone, mfu = kNone, grad_norm = kNone;
  double val_loss = kNone;                  // on validation steps only
  std::vector<double> peak_bytes_per_rank;  // peak allocated memory, one entry per rank (empty: not measured)
};

struct RunMark {
  double step = 0;
  std::string kind;  // "shrink", "resume" or "stop"
  std::string text;  // "micro-batch 16 -> 8 (out of memory on rank 1)"
};

struct RunLog {
  std::string name;                                  // the run directory's or the file's name
  std::string path;                                  // the JSONL file
  nlohmann::json config = nlohmann::json::object();  // the newest "config" record
  std::vector<StepPoint> steps;                      // by step; a resumed run's replay replaces
  std::vector<RunMark> marks;
  std::int64_t unreadable_lines = 0;
};

// `path`: a JSONL file, or a run directory holding one (metrics.jsonl first, else its one .jsonl).
// Throws naming the path when it holds no JSONL or no record aios writes.
RunLog read_run_log(const std::string& path);

}  // namespace aios
