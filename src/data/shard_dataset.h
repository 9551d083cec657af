// Serves token windows of `window` + 1 tokens (inputs plus the shifted targets) from one split of
// a shard set to rank `rank` of `world`. Windows start every `window` tokens inside a shard and
// never cross shard boundaries. Order comes from WindowSampler: disjoint across ranks, seeded,
// deterministic, and resumable from one integer cursor.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/shard_set.h"
#include "data/window_sampler.h"

namespace aios {

struct ShardDatasetOptions {
  std::string split = "train";
  std::int64_t window = 0;  // tokens of context per sample (--window-size)
  int rank = 0;
  int world = 1;
  std::uint64_t seed = 0;
  bool shuffle = true;
  bool verify_checksums = true;  // check each shard's CRC the first time it is opened
};

class ShardDataset {
 public:
  ShardDataset(ShardSet shards, ShardDatasetOptions options);
  ~ShardDataset();

  // Windows of window + 1 tokens that `split` holds (0 when no shard holds a whole window).
  static std::int64_t windows_in(const ShardSet& shards, const std::string& split, std::int64_t window);

  std::int64_t windows_per_epoch() const { return sampler_->windows_per_epoch(); }
  std::int64_t window_tokens() const { return options_.window + 1; }
  const ShardDatasetOptions& options() const { return options_; }

  // Reads this rank's next `count` windows into out, row-major [count, window + 1]. Every rank
  // must call it with the same counts so that their cursors stay equal.
  void next_windows(std::int64_t count, std::int64_t* out);
  // Reads window `window` (0 <= window < windows_per_epoch) in shard order.
  void read_window(std::int64_t window, std::int64_t* out) const;
  // The global window that this rank's i-th next read would return, without reading it.
  std::int64_t peek_window(std::int64_t i) const;

  // Global position of the next round of reads: all that a checkpoint needs to resume exactly.
  std::uint64_t cursor() const { return cursor_; }
  void set_cursor(std::uint64_t cursor) { cursor_ = cursor; }
  double epochs_done() const { return static_cast<double>(cursor_) / static_cast<double>(windows_per_epoch()); }

 private:
  const ShardFileReader& reader(std::size_t shard) const;

  ShardSet set_;
  ShardDatasetOptions options_;
  std::vector<ShardRecord> shards_;
  std::vector<std::int64_t> first_window_;  // prefix sums of windows per shard, size shards + 1
  std::unique_ptr<WindowSampler> sampler_;
  mutable std::vector<std::optional<ShardFileReader>> readers_;
  std::uint64_t cursor_ = 0;
};

}  // namespace aios
