#include <gtest/gtest.h>

#include "base/error.h"
#include "data/shard_file.h"
#include "test_support.h"

namespace aios {
namespace {

ShardAttributes attributes(std::int64_t vocab) {
  ShardAttributes a;
  a.split = "train";
  a.vocab_size = vocab;
  a.tokenizer_kind = "test";
  a.tokenizer_hash = "h1";
  a.end_of_text_id = static_cast<std::uint32_t>(vocab - 1);
  return a;
}

class ShardFileRoundTrip : public ::testing::TestWithParam<TokenDtype> {};

TEST_P(ShardFileRoundTrip, ReadsBackWhatWasWritten) {
  testing::ScratchDir dir;
  const TokenDtype dtype = GetParam();
  const std::uint32_t vocab = dtype == TokenDtype::kUint16 ? 65536 : 200'000;
  const auto tokens = testing::random_tokens(100'003, vocab, 3);
  const std::vector<std::uint64_t> docs = {0, 17, 5000, 99'999};
  const auto path = (dir / "s.h5");
  const auto summary = write_shard_file(path, tokens, docs, dtype, attributes(vocab));
  EXPECT_EQ(summary.tokens, 100'003);
  EXPECT_EQ(summary.documents, 4);

  ShardFileReader reader(path);
  EXPECT_EQ(reader.size(), 100'003);
  EXPECT_EQ(reader.dtype(), dtype);
  EXPECT_EQ(reader.attributes().vocab_size, vocab);
  EXPECT_EQ(reader.attributes().tokenizer_hash, "h1");
  EXPECT_EQ(reader.attributes().end_of_text_id, vocab - 1);
  EXPECT_EQ(reader.doc_offsets(), docs);
  EXPECT_EQ(reader.compute_crc32(), summary.crc32);

  std::vector<std::uint32_t> all(tokens.size());
  reader.read(0, reader.size(), all.data());
  EXPECT_EQ(all, tokens);
  // Hyperslab reads at arbitrary offsets, widened to int64.
  for (std::int64_t start : {0, 1, 4095, 50'000, 100'003 - 257}) {
    std::vector<std::int64_t> window(257);
    reader.read(start, 257, window.data());
    for (int i = 0; i < 257; ++i) ASSERT_EQ(window[i], tokens[start + i]) << start << "+" << i;
  }
  std::vector<std::int64_t> past_end(10);
  EXPECT_THROW(reader.read(100'000, 10, past_end.data()), Error);
}

INSTANTIATE_TEST_SUITE_P(BothDtypes, ShardFileRoundTrip, ::testing::Values(TokenDtype::kUint16, TokenDtype::kUint32));

TEST(ShardFile, RefusesIdsThatDoNotFitUint16) {
  testing::ScratchDir dir;
  const std::vector<std::uint32_t> tokens = {1, 70'000};
  try {
    write_shard_file((dir / "s.h5"), tokens, {}, TokenDtype::kUint16, attributes(100'000));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not fit uint16"), std::string::npos) << e.what();
  }
}

TEST(ShardFile, TruncatedFileIsAClearError) {
  testing::ScratchDir dir;
  const auto path = dir / "s.h5";
  write_shard_file(path, testing::random_tokens(50'000, 256, 1), {}, TokenDtype::kUint16, attributes(256));
  const std::string bytes = testing::read_file(path);
  testing::write_file(path, bytes.substr(0, bytes.size() / 2));
  try {
    ShardFileReader reader(path);
    std::vector<std::uint32_t> all(static_cast<std::size_t>(reader.size()));
    reader.read(0, reader.size(), all.data());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(ShardFile, SmallestDtype) {
  EXPECT_EQ(smallest_dtype_for(256), TokenDtype::kUint16);
  EXPECT_EQ(smallest_dtype_for(65536), TokenDtype::kUint16);
  EXPECT_EQ(smallest_dtype_for(65537), TokenDtype::kUint32);
}

}  // namespace
}  // namespace aios
