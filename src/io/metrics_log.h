// JSONL metrics: one JSON object per line, flushed per line so a crash loses nothing written.
#pragma once

#include <cstdio>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>

namespace aios {

class MetricsLog {
 public:
  // An empty path makes a log that writes nothing. Appends when `append` (resumed runs).
  MetricsLog(const std::string& path, bool append);
  void write(const nlohmann::json& record);

 private:
  std::unique_ptr<FILE, int (*)(FILE*)> file_{nullptr, &std::fclose};
  std::string path_;
};

// One refreshing line on a terminal; a plain line every `plain_every` updates otherwise.
class ProgressLine {
 public:
  // quiet: prints nothing (ranks other than 0).
  explicit ProgressLine(std::int64_t plain_every, bool quiet = false);
  void update(const std::string& text, bool force_plain = false);
  void finish();

 private:
  bool terminal_;
  bool quiet_;
  std::int64_t plain_every_;
  std::int64_t updates_ = 0;
  std::size_t last_width_ = 0;
};

std::string format_duration(double seconds);  // "1h02m", "3m05s", "12s"
std::string format_bytes(double bytes);       // "1.2 GiB"

}  // namespace aios
