#include "data/shard_dataset.h"

#include <algorithm>

#include "base/error.h"
#include "base/files.h"

namespace aios {
namespace {
std::int64_t windows_in_shard(const ShardRecord& shard, std::int64_t window) {
  return shard.tokens > window ? (shard.tokens - 1) / window : 0;
}
}  // namespace

std::int64_t ShardDataset::windows_in(const ShardSet& shards, const std::string& split, std::int64_t window) {
  std::int64_t windows = 0;
  for (const auto& shard : shards.shards(split)) windows += windows_in_shard(shard, window);
  return windows;
}

ShardDataset::ShardDataset(ShardSet shards, ShardDatasetOptions options)
    : set_(std::move(shards)), options_(std::move(options)) {
  if (options_.window < 1) {
    throw Error("--window-size", "value " + std::to_string(options_.window) + " is not positive",
                "a window of at least 1 token");
  }
  if (options_.world < 1 || options_.rank < 0 || options_.rank >= options_.world) {
    throw Error("ShardDataset", "rank " + std::to_string(options_.rank) + " of world " +
                                    std::to_string(options_.world) + " is invalid");
  }
  shards_ = set_.shards(options_.split);
  first_window_.push_back(0);
  for (const auto& shard : shards_)
    first_window_.push_back(first_window_.back() + windows_in_shard(shard, options_.window));
  if (first_window_.back() == 0) {
    throw Error(set_.directory(),
                "split '" + options_.split + "' (" + std::to_string(set_.manifest().tokens(options_.split)) +
                    " tokens in " + std::to_string(shards_.size()) + " shards) has no shard holding one window of " +
                    std::to_string(options_.window + 1) + " tokens",
                "a smaller --window-size, a larger corpus, or a larger --val-fraction/--shard-tokens at prepare");
  }
  sampler_ = std::make_unique<WindowSampler>(first_window_.back(), options_.seed, options_.shuffle);
  readers_.resize(shards_.size());
}

ShardDataset::~ShardDataset() = default;

const ShardFileReader& ShardDataset::reader(std::size_t shard) const {
  if (!readers_[shard]) readers_[shard].emplace(set_.open_shard(shards_[shard], options_.verify_checksums));
  return *readers_[shard];
}

void ShardDataset::read_window(std::int64_t window, std::int64_t* out) const {
  if (window < 0 || window >= first_window_.back()) {
    throw Error("ShardDataset", "window " + std::to_string(window) + " is out of range");
  }
  const auto it = std::upper_bound(first_window_.begin(), first_window_.end(), window);
  const auto shard = static_cast<std::size_t>(it - first_window_.begin() - 1);
  const std::int64_t start = (window - first_window_[shard]) * options_.window;
  reader(shard).read(start, options_.window + 1, out);
  // A token outside the vocabulary would index past the embedding table (a device-side assert or
  // a stack trace); a damaged shard read with --no-verify-shards is where one comes from.
  const std::int64_t vocab = set_.manifest().tokenizer.vocab_size;
  for (std::int64_t i = 0; i <= options_.window; ++i) {
    if (out[i] < 0 || out[i] >= vocab) {
      throw Error(join_path(set_.directory(), shards_[shard].file),
                  "token id " + std::to_string(out[i]) + " at position " + std::to_string(start + i) +
                      " is outside the tokenizer's vocabulary of " + std::to_string(vocab),
                  "a shard written by aios prepare (aios inspect --verify checks every shard)");
    }
  }
}

std::int64_t ShardDataset::peek_window(std::int64_t i) const {
  const auto world = static_cast<std::uint64_t>(options_.world);
  return sampler_->window_at(cursor_ + static_cast<std::uint64_t>(i) * world +
                             static_cast<std::uint64_t>(options_.rank));
}

void ShardDataset::next_windows(std::int64_t count, std::int64_t* out) {
  for (std::int64_t i = 0; i < count; ++i) read_window(peek_window(i), out + i * window_tokens());
  cursor_ += static_cast<std::uint64_t>(count) * static_cast<std::uint64_t>(options_.world);
}

}  // namespace aios
