#include <gtest/gtest.h>

#include <set>

#include "data/window_sampler.h"

namespace aios {
namespace {

TEST(WindowSampler, EachEpochIsAPermutation) {
  for (std::int64_t n : {1, 2, 3, 7, 64, 1000, 4097}) {
    WindowSampler sampler(n, 42, true);
    for (std::uint64_t epoch : {0u, 1u, 9u}) {
      std::vector<bool> seen(static_cast<std::size_t>(n), false);
      for (std::int64_t i = 0; i < n; ++i) {
        const auto w = sampler.permute(i, epoch);
        ASSERT_GE(w, 0);
        ASSERT_LT(w, n);
        ASSERT_FALSE(seen[static_cast<std::size_t>(w)]) << "n=" << n << " epoch=" << epoch;
        seen[static_cast<std::size_t>(w)] = true;
      }
    }
  }
}

TEST(WindowSampler, ShufflesDifferentlyPerEpochAndSeed) {
  WindowSampler a(1000, 1, true), b(1000, 2, true);
  int same_epoch = 0, same_seed = 0, identity = 0;
  for (int i = 0; i < 1000; ++i) {
    same_epoch += a.permute(i, 0) == a.permute(i, 1);
    same_seed += a.permute(i, 0) == b.permute(i, 0);
    identity += a.permute(i, 0) == i;
  }
  // A random permutation has about one fixed point; allow generous slack.
  EXPECT_LT(same_epoch, 20);
  EXPECT_LT(same_seed, 20);
  EXPECT_LT(identity, 20);
  WindowSampler ordered(1000, 1, false);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(ordered.permute(i, 3), i);
}

}  // namespace
}  // namespace aios
