#include <gtest/gtest.h>

#include <map>

#include "base/error.h"
#include "data/llmc_import.h"
#include "data/prepare.h"
#include "data/shard_dataset.h"
#include "test_support.h"

namespace aios {
namespace {

constexpr std::int64_t kSeqLen = 32;

// A shard set whose tokens are their own positions modulo the vocabulary, in several shards
// of unequal size, so windows can be checked against the source stream.
class ShardDatasetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<std::uint32_t> stream(30'011);
    for (std::size_t i = 0; i < stream.size(); ++i) stream[i] = static_cast<std::uint32_t>(i % 50'000);
    write_llmc_file((dir_ / "stream.bin"), stream, TokenDtype::kUint16);
    PrepareOptions options;
    options.inputs = {(dir_ / "stream.bin")};
    options.output = (dir_ / "set");
    options.shard_tokens = 7'000;
    options.val_fraction = 0;
    options.vocab_size = 50'257;
    prepare_shards(options);
    set_ = std::make_unique<ShardSet>(ShardSet::open(options.output));
  }

  ShardDataset dataset(int rank, int world, std::uint64_t seed = 11) {
    ShardDatasetOptions options;
    options.window = kSeqLen;
    options.rank = rank;
    options.world = world;
    options.seed = seed;
    return ShardDataset(*set_, options);
  }

  testing::ScratchDir dir_;
  std::unique_ptr<ShardSet> set_;
};

TEST_F(ShardDatasetTest, WindowsAreConsecutiveTokensWithinOneShard) {
  auto data = dataset(0, 1);
  // 30011 tokens in shards of 7000,7000,7000,7000,2011: (7000-1)/32 = 218 windows each, 62 in the last.
  EXPECT_EQ(data.windows_per_epoch(), 4 * 218 + 62);
  EXPECT_EQ(ShardDataset::windows_in(*set_, "train", kSeqLen), data.windows_per_epoch());
  EXPECT_EQ(ShardDataset::windows_in(*set_, "val", kSeqLen), 0);  // prepared with --val-fraction 0
  EXPECT_EQ(ShardDataset::windows_in(*set_, "train", 7000), 0);   // no shard holds 7001 tokens
  std::vector<std::int64_t> window(kSeqLen + 1);
  for (std::int64_t w : {0L, 217L, 218L, 500L, data.windows_per_epoch() - 1}) {
    data.read_window(w, window.data());
    const std::int64_t shard = std::min<std::int64_t>(w / 218, 4);
    const std::int64_t first = shard * 7000 + (w - shard * 218) * kSeqLen;
    for (std::int64_t i = 0; i <= kSeqLen; ++i) ASSERT_EQ(window[i], first + i) << "window " << w;
  }
}

TEST_F(ShardDatasetTest, RanksAreDisjointAndCoverEveryWindowOncePerEpoch) {
  for (int world : {1, 2, 3}) {
    const std::int64_t n = dataset(0, world).windows_per_epoch();
    std::map<std::int64_t, int> served;
    const std::int64_t reads_per_rank = (n + world - 1) / world;
    for (int rank = 0; rank < world; ++rank) {
      auto data = dataset(rank, world);
      std::vector<std::int64_t> batch(4 * (kSeqLen + 1)), expected(kSeqLen + 1);
      for (std::int64_t read = 0; read < reads_per_rank; read += 4) {
        std::vector<std::int64_t> ids;
        for (int i = 0; i < 4; ++i) ids.push_back(data.peek_window(i));
        const std::uint64_t position = data.cursor() + static_cast<std::uint64_t>(rank);
        data.next_windows(4, batch.data());
        for (int i = 0; i < 4; ++i) {
          if (position + static_cast<std::uint64_t>(i * world) >= static_cast<std::uint64_t>(n))
            continue;  // next epoch
          ++served[ids[i]];
          data.read_window(ids[i], expected.data());
          ASSERT_TRUE(std::equal(expected.begin(), expected.end(), batch.begin() + i * (kSeqLen + 1)));
        }
      }
    }
    ASSERT_EQ(static_cast<std::int64_t>(served.size()), n) << "world " << world;
    for (const auto& [window, count] : served) ASSERT_EQ(count, 1) << "window " << window << " world " << world;
  }
}

TEST_F(ShardDatasetTest, CursorResumeYieldsTheIdenticalSequence) {
  auto straight = dataset(1, 2);
  auto first_half = dataset(1, 2);
  std::vector<std::int64_t> a(3 * (kSeqLen + 1)), b(a.size());
  for (int step = 0; step < 5; ++step) first_half.next_windows(3, b.data());
  auto resumed = dataset(1, 2);
  resumed.set_cursor(first_half.cursor());
  for (int step = 0; step < 5; ++step) straight.next_windows(3, a.data());
  // Across the epoch boundary too: 40 more steps pass the 934 windows of epoch 0.
  for (int step = 0; step < 200; ++step) {
    straight.next_windows(3, a.data());
    resumed.next_windows(3, b.data());
    ASSERT_EQ(a, b) << "step " << step;
  }
  EXPECT_GT(straight.epochs_done(), 1.0);
}

TEST_F(ShardDatasetTest, SeedChangesTheOrder) {
  auto a = dataset(0, 1, 1), b = dataset(0, 1, 2);
  int same = 0;
  for (int i = 0; i < 100; ++i) same += a.peek_window(i) == b.peek_window(i);
  EXPECT_LT(same, 10);
}

TEST_F(ShardDatasetTest, WindowLargerThanEveryShardIsAClearError) {
  ShardDatasetOptions options;
  options.window = 7000;
  try {
    ShardDataset data(*set_, options);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--window-size"), std::string::npos) << e.what();
  }
  options.window = 0;
  EXPECT_THROW(ShardDataset(*set_, options), Error);
}

}  // namespace
}  // namespace aios
