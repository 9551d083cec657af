// Which token window each rank reads next. Pure arithmetic, no I/O.
//
// The windows of an epoch are shuffled by a keyed pseudo-random permutation (a Feistel network
// with cycle walking: O(1) memory and random access, so a dataset of billions of windows needs no
// permutation table). Epochs follow each other in one endless global sequence; rank r of w reads
// positions r, r+w, r+2w, ... of it. Hence the ranks' windows are disjoint, every window of an
// epoch is served exactly once across ranks, and the whole state is one number: the global
// position at which the next round of reads starts (the same on every rank, and still valid after
// a restart with another world size).
#pragma once

#include <cstdint>

namespace aios {

class WindowSampler {
 public:
  // windows_per_epoch > 0. shuffle = false serves windows in order (validation).
  WindowSampler(std::int64_t windows_per_epoch, std::uint64_t seed, bool shuffle);

  std::int64_t windows_per_epoch() const { return windows_; }
  // The window at a global position (epoch = position / windows_per_epoch).
  std::int64_t window_at(std::uint64_t global_position) const;
  // The position-th element of the epoch's permutation.
  std::int64_t permute(std::int64_t index, std::uint64_t epoch) const;

 private:
  std::int64_t windows_;
  std::uint64_t seed_;
  bool shuffle_;
  int half_bits_ = 0;  // the Feistel network permutes [0, 4^half_bits) >= windows
};

}  // namespace aios
