// Helpers shared by the tests: a scratch directory per test and small file utilities.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/files.h"
#include "data/shard_set.h"

namespace aios::testing {

// A fresh directory under the system temp dir, removed when the test ends.
class ScratchDir {
 public:
  ScratchDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = join_path(temp_directory(),
                      "aios-test-" + std::to_string(::getpid()) + "-" + info->test_suite_name() + "-" + info->name());
    // Parameterized test names hold '/'.
    for (std::size_t i = temp_directory().size() + 1; i < path_.size(); ++i) {
      if (path_[i] == '/') path_[i] = '_';
    }
    remove_tree(path_);
    make_directories(path_);
  }
  ~ScratchDir() { remove_tree(path_); }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return join_path(path_, name); }

 private:
  std::string path_;
};

inline void write_file(const std::string& path, const std::string& contents) {
  make_directories(parent_path(path));
  std::ofstream out(path, std::ios::binary);
  out << contents;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Deterministic English-like text: words from a small vocabulary, lines and paragraphs.
inline std::string sample_text(std::size_t bytes, std::uint32_t seed) {
  static const char* words[] = {"the",      "model",  "learns", "a",    "token",   "window", "of", "text", "and",
                                "gradient", "memory", "shard",  "rank", "ünïcode", "日本語", "42", "step"};
  std::mt19937 rng(seed);
  std::string text;
  while (text.size() < bytes) {
    text += words[rng() % (sizeof(words) / sizeof(words[0]))];
    const auto r = rng() % 16;
    text += r == 0 ? "\n" : (r == 1 ? ".\n\n" : " ");
  }
  text.resize(bytes);
  return text;
}

inline std::vector<std::uint32_t> random_tokens(std::size_t count, std::uint32_t vocab, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::uint32_t> tokens(count);
  for (auto& t : tokens) t = rng() % vocab;
  return tokens;
}

// All tokens of one split, shard after shard, checksums verified.
inline std::vector<std::uint32_t> read_split(const ShardSet& set, const std::string& split) {
  std::vector<std::uint32_t> all;
  for (const auto& shard : set.shards(split)) {
    auto reader = set.open_shard(shard, true);
    std::vector<std::uint32_t> part(static_cast<std::size_t>(reader.size()));
    reader.read(0, reader.size(), part.data());
    all.insert(all.end(), part.begin(), part.end());
  }
  return all;
}

// Sets an environment variable for the lifetime of the object (fault-injection switches).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) { ::setenv(name, value.c_str(), 1); }
  ~ScopedEnv() { ::unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
};

// The message of the aios::Error that `action` throws, or "" when it throws none.
inline std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

struct Run {
  int status = -1;
  std::string output;  // stdout and stderr together
};

// Runs the built `aios` binary with `args` (a shell command line's arguments), as a user would.
inline Run run_aios(const std::string& args) {
  Run run;
  const std::string command = std::string(AIOS_BINARY) + " " + args + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  std::array<char, 4096> buffer{};
  while (std::size_t n = std::fread(buffer.data(), 1, buffer.size(), pipe)) run.output.append(buffer.data(), n);
  const int raw = ::pclose(pipe);
  run.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return run;
}

}  // namespace aios::testing
