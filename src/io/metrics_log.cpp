#include "io/metrics_log.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/files.h"

namespace aios {

MetricsLog::MetricsLog(const std::string& path, bool append) : path_(path) {
  if (path.empty()) return;
  make_directories(parent_path(path));
  file_.reset(std::fopen(path.c_str(), append ? "a" : "w"));
  if (!file_) throw Error("--log-file", "cannot open '" + path + "': " + std::strerror(errno), "a writable path");
}

void MetricsLog::write(const nlohmann::json& record) {
  if (!file_) return;
  const std::string line = record.dump() + "\n";
  if (std::fwrite(line.data(), 1, line.size(), file_.get()) != line.size() || std::fflush(file_.get()) != 0) {
    throw Error(path_, "write failed (disk full?)");
  }
}

ProgressLine::ProgressLine(std::int64_t plain_every, bool quiet)
    : terminal_(::isatty(STDERR_FILENO) == 1), quiet_(quiet), plain_every_(plain_every < 1 ? 1 : plain_every) {}

void ProgressLine::update(const std::string& text, bool force_plain) {
  if (quiet_) return;
  ++updates_;
  if (terminal_) {
    const std::size_t pad = last_width_ > text.size() ? last_width_ - text.size() : 0;
    std::fprintf(stderr, "\r%s%s", text.c_str(), std::string(pad, ' ').c_str());
    std::fflush(stderr);
    last_width_ = text.size();
    if (force_plain) {
      std::fprintf(stderr, "\n");
      last_width_ = 0;
    }
  } else if (force_plain || updates_ % plain_every_ == 0) {
    std::fprintf(stderr, "%s\n", text.c_str());
  }
}

void ProgressLine::finish() {
  if (terminal_ && last_width_ > 0) std::fprintf(stderr, "\n");
  last_width_ = 0;
}

std::string format_duration(double seconds) {
  const auto s = static_cast<long long>(seconds + 0.5);
  char text[32];
  if (s >= 3600) {
    std::snprintf(text, sizeof(text), "%lldh%02lldm", s / 3600, s / 60 % 60);
  } else if (s >= 60) {
    std::snprintf(text, sizeof(text), "%lldm%02llds", s / 60, s % 60);
  } else {
    std::snprintf(text, sizeof(text), "%llds", s);
  }
  return text;
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (bytes >= 1024 && unit < 4) bytes /= 1024, ++unit;
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f %s", bytes, units[unit]);
  return text;
}

}  // namespace aios
