// JSONL metrics: one JSON object per line, flushed per line so a crash loses nothing written.
#pragma once

#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>

namespace aios {

class MetricsLog {
 public:
  // An empty path makes a log that writes nothing. Appends when `append` (resumed runs).
  MetricsLog(const std::string& path, bool append);
  // Writes `record` as one line, with "time" (UTC, ISO 8601, milliseconds) and "elapsed_s"
  // (seconds since this log was opened) added.
  void write(const nlohmann::json& record);

 private:
  std::unique_ptr<FILE, int (*)(FILE*)> file_{nullptr, &std::fclose};
  std::string path_;
  std::chrono::steady_clock::time_point opened_ = std::chrono::steady_clock::now();
};

// One refreshing line on a terminal. Elsewhere (a batch job's log) a plain line, with the date and
// time, every `plain_every` updates or every `plain_seconds`, whichever comes first.
class ProgressLine {
 public:
  // quiet: prints nothing (ranks other than 0).
  explicit ProgressLine(std::int64_t plain_every, bool quiet = false, double plain_seconds = 30);
  void update(const std::string& text, bool force_plain = false);
  void finish();

 private:
  bool terminal_;
  bool quiet_;
  std::int64_t plain_every_;
  double plain_seconds_;
  std::int64_t updates_ = 0;
  std::size_t last_width_ = 0;
  std::chrono::steady_clock::time_point last_plain_ = std::chrono::steady_clock::now();
};

std::string utc_timestamp();  // "2026-12-02T00:55:01.123Z"

std::string format_duration(double seconds);  // "1h02m", "3m05s", "12s"
std::string format_bytes(double bytes);       // "1.2 GiB"

}  // namespace aios
