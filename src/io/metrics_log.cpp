#include "io/metrics_log.h"

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
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

std::string utc_timestamp() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm utc{};
  ::gmtime_r(&seconds, &utc);
  char text[40];
  std::snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02d.%03lldZ", utc.tm_year + 1900, utc.tm_mon + 1,
                utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<long long>(millis));
  return text;
}

void MetricsLog::write(const nlohmann::json& record) {
  if (!file_) return;
  nlohmann::json stamped = record;
  stamped["time"] = utc_timestamp();
  stamped["elapsed_s"] =
      std::round(std::chrono::duration<double>(std::chrono::steady_clock::now() - opened_).count() * 1000) / 1000;
  const std::string line = stamped.dump() + "\n";
  if (std::fwrite(line.data(), 1, line.size(), file_.get()) != line.size() || std::fflush(file_.get()) != 0) {
    throw Error(path_, "write failed (disk full?)");
  }
}

ProgressLine::ProgressLine(std::int64_t plain_every, bool quiet, double plain_seconds)
    : terminal_(::isatty(STDERR_FILENO) == 1),
      quiet_(quiet),
      plain_every_(plain_every < 1 ? 1 : plain_every),
      plain_seconds_(plain_seconds) {}

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
  } else {
    const auto now = std::chrono::steady_clock::now();
    if (force_plain || updates_ % plain_every_ == 0 ||
        std::chrono::duration<double>(now - last_plain_).count() >= plain_seconds_) {
      const std::string stamp = utc_timestamp();
      std::fprintf(stderr, "[%s %s] %s\n", stamp.substr(0, 10).c_str(), stamp.substr(11, 8).c_str(), text.c_str());
      std::fflush(stderr);
      last_plain_ = now;
    }
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
