#include "data/window_sampler.h"

#include "base/error.h"

namespace aios {
namespace {

// splitmix64's finalizer: a fast, well-mixed 64-bit hash.
std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

constexpr int kFeistelRounds = 6;

}  // namespace

WindowSampler::WindowSampler(std::int64_t windows_per_epoch, std::uint64_t seed, bool shuffle)
    : windows_(windows_per_epoch), seed_(seed), shuffle_(shuffle) {
  if (windows_ < 1) throw Error("WindowSampler", "an epoch needs at least one window");
  while ((std::uint64_t{1} << (2 * half_bits_)) < static_cast<std::uint64_t>(windows_)) ++half_bits_;
}

std::int64_t WindowSampler::permute(std::int64_t index, std::uint64_t epoch) const {
  if (!shuffle_ || windows_ == 1) return index;
  const std::uint64_t mask = (std::uint64_t{1} << half_bits_) - 1;
  const std::uint64_t key = mix(seed_ ^ mix(epoch + 0x5eed));
  auto x = static_cast<std::uint64_t>(index);
  // A Feistel network is a bijection on [0, 4^half_bits); applying it until the value lands in
  // [0, windows) (cycle walking) restricts it to a bijection on [0, windows). The domain is at
  // most 4x the range, so the expected number of walks is below 4.
  do {
    std::uint64_t left = x >> half_bits_;
    std::uint64_t right = x & mask;
    for (int round = 0; round < kFeistelRounds; ++round) {
      const std::uint64_t next = left ^ (mix(right ^ key ^ (static_cast<std::uint64_t>(round) << 56)) & mask);
      left = right;
      right = next;
    }
    x = (left << half_bits_) | right;
  } while (x >= static_cast<std::uint64_t>(windows_));
  return static_cast<std::int64_t>(x);
}

std::int64_t WindowSampler::window_at(std::uint64_t global_position) const {
  const auto windows = static_cast<std::uint64_t>(windows_);
  return permute(static_cast<std::int64_t>(global_position % windows), global_position / windows);
}

}  // namespace aios
