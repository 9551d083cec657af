#include <gtest/gtest.h>

#include "base/error.h"
#include "data/llmc_import.h"
#include "data/prepare.h"
#include "data/shard_set.h"
#include "test_support.h"

namespace aios {
namespace {

using testing::error_of;
using testing::read_split;

TEST(LlmcImport, ImportedTokensEqualTheFile) {
  testing::ScratchDir dir;
  auto tokens = testing::random_tokens(25'000, 50'257, 9);
  for (std::size_t i = 0; i < tokens.size(); i += 1000) tokens[i] = 50'256;  // document starts
  write_llmc_file((dir / "a.bin"), tokens, TokenDtype::kUint16);
  PrepareOptions options;
  options.inputs = {(dir / "a.bin")};
  options.output = (dir / "set");
  options.shard_tokens = 10'000;
  options.val_fraction = 0;
  prepare_shards(options);
  const ShardSet set = ShardSet::open(options.output);
  EXPECT_EQ(set.manifest().tokenizer.kind, "llmc-import");
  EXPECT_EQ(set.manifest().tokenizer.vocab_size, 50'257);
  EXPECT_EQ(set.manifest().dtype, TokenDtype::kUint16);
  EXPECT_EQ(read_split(set, "train"), tokens);
  EXPECT_EQ(set.manifest().documents("train"), 25);
}

// llm.c ships its own split (fineweb_train_*.bin, fineweb_val_*.bin): the _val files are the
// validation split, whole, and nothing of the training files goes there.
TEST(LlmcImport, LlmcValFilesAreTheValidationSplit) {
  testing::ScratchDir dir;
  auto train = testing::random_tokens(30'000, 50'257, 1), val = testing::random_tokens(4'000, 50'257, 2);
  train[0] = val[0] = 50'256;
  write_llmc_file(dir / "shake_train.bin", train, TokenDtype::kUint16);
  write_llmc_file(dir / "shake_val.bin", val, TokenDtype::kUint16);
  PrepareOptions options;
  options.inputs = {dir / "shake_train.bin", dir / "shake_val.bin"};
  options.output = dir / "set";
  prepare_shards(options);
  const ShardSet set = ShardSet::open(options.output);
  EXPECT_EQ(read_split(set, "train"), train);
  EXPECT_EQ(read_split(set, "val"), val);
  EXPECT_EQ(set.manifest().val_fraction, 0.0);
}

TEST(LlmcImport, Llama3FilesUseUint32) {
  testing::ScratchDir dir;
  const auto tokens = testing::random_tokens(5'000, 128'256, 4);
  write_llmc_file((dir / "l.bin"), tokens, TokenDtype::kUint32);
  PrepareOptions options;
  options.inputs = {(dir / "l.bin")};
  options.output = (dir / "set");
  options.val_fraction = 0;
  prepare_shards(options);
  const ShardSet set = ShardSet::open(options.output);
  EXPECT_EQ(set.manifest().dtype, TokenDtype::kUint32);
  EXPECT_EQ(read_split(set, "train"), tokens);
}

TEST(LlmcImport, TruncatedFileNamesTheFile) {
  testing::ScratchDir dir;
  write_llmc_file((dir / "a.bin"), testing::random_tokens(1000, 50'257, 1), TokenDtype::kUint16);
  const std::string bytes = testing::read_file(dir / "a.bin");
  testing::write_file(dir / "a.bin", bytes.substr(0, bytes.size() - 10));
  try {
    read_llmc_header(((dir / "a.bin")));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a.bin"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("announces 1000 tokens"), std::string::npos) << e.what();
  }
}

TEST(LlmcImport, UnknownVersionIsRejected) {
  testing::ScratchDir dir;
  write_llmc_file((dir / "a.bin"), testing::random_tokens(10, 100, 1), TokenDtype::kUint16);
  std::string bytes = testing::read_file(dir / "a.bin");
  bytes[4] = 3;  // version 3
  testing::write_file(dir / "a.bin", bytes);
  EXPECT_THROW(read_llmc_header(((dir / "a.bin"))), Error);
}

}  // namespace
}  // namespace aios
