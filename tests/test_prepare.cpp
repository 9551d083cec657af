#include <gtest/gtest.h>

#include <cmath>

#include "base/error.h"
#include "data/llmc_import.h"
#include "data/prepare.h"
#include "data/shard_set.h"
#include "data/tokenizer.h"
#include "test_support.h"

namespace aios {
namespace {

using testing::error_of;
using testing::read_split;

// Re-interleaves the two splits with the documented block rule, independently of the writer.
std::vector<std::uint32_t> reassemble(const ShardSet& set) {
  const auto train = read_split(set, "train");
  const auto val = read_split(set, "val");
  const double f = set.manifest().val_fraction;
  const auto block = static_cast<std::size_t>(set.manifest().split_block_tokens);
  std::vector<std::uint32_t> stream;
  std::size_t t = 0, v = 0;
  for (std::size_t b = 0; t < train.size() || v < val.size(); ++b) {
    const bool is_val = std::ceil((b + 1) * f) > std::ceil(b * f);
    const auto& source = is_val ? val : train;
    std::size_t& at = is_val ? v : t;
    const std::size_t take = std::min(block, source.size() - at);
    stream.insert(stream.end(), source.begin() + static_cast<std::ptrdiff_t>(at),
                  source.begin() + static_cast<std::ptrdiff_t>(at + take));
    at += take;
    if (take < block) break;
  }
  return stream;
}

TEST(Prepare, ByteShardsHoldExactlyTheCorpus) {
  testing::ScratchDir dir;
  const std::string a = testing::sample_text(70'001, 1), b = testing::sample_text(33'333, 2);
  testing::write_file(dir / "in/a.txt", a);
  testing::write_file(dir / "in/sub/b.txt", b);
  testing::write_file(dir / "in/.hidden", "skipped");
  PrepareOptions options;
  options.inputs = {(dir / "in")};
  options.output = (dir / "set");
  options.shard_tokens = 20'000;
  options.val_fraction = 0.05;
  const auto result = prepare_shards(options);
  EXPECT_EQ(result.input_bytes, 103'334);
  const ShardSet set = ShardSet::open(options.output);
  EXPECT_EQ(set.manifest().documents("train") + set.manifest().documents("val"), 2);
  EXPECT_GT(set.manifest().tokens("val"), 0);
  EXPECT_NEAR(static_cast<double>(set.manifest().tokens("val")) / 103'334, 0.05, 0.02);
  const auto stream = reassemble(set);
  EXPECT_EQ(make_byte_tokenizer()->decode(stream), a + b);
  EXPECT_FALSE(path_exists(dir / ("set.tmp-" + std::to_string(::getpid()))));
}

TEST(Prepare, LineDocumentsAreCounted) {
  testing::ScratchDir dir;
  testing::write_file(dir / "lines.txt", "first line\n\nsecond line\nthird\n");
  PrepareOptions options;
  options.inputs = {(dir / "lines.txt")};
  options.output = (dir / "set");
  options.documents = "line";
  options.val_fraction = 0;
  prepare_shards(options);
  const ShardSet set = ShardSet::open(options.output);
  EXPECT_EQ(set.manifest().documents("train"), 3);
  auto reader = set.open_shard(set.shards("train")[0], true);
  EXPECT_EQ(reader.doc_offsets(), (std::vector<std::uint64_t>{0, 11, 23}));
}

#if AIOS_WITH_SENTENCEPIECE
TEST(Prepare, TrainsASentencePieceTokenizerAndStoresIt) {
  testing::ScratchDir dir;
  const std::string text = testing::sample_text(150'000, 3);
  testing::write_file(dir / "a.txt", text);
  PrepareOptions options;
  options.inputs = {(dir / "a.txt")};
  options.output = (dir / "set");
  options.train_tokenizer_vocab = 500;
  options.val_fraction = 0;
  prepare_shards(options);
  const ShardSet set = ShardSet::open(options.output);
  EXPECT_EQ(set.manifest().tokenizer.kind, "sentencepiece");
  // hard_vocab_limit=false lets a small corpus end below the asked size.
  EXPECT_LE(set.manifest().tokenizer.vocab_size, 500);
  EXPECT_GT(set.manifest().tokenizer.vocab_size, 300);
  ASSERT_TRUE(path_exists(dir / "set/tokenizer.model"));
  auto tokenizer = load_tokenizer(((dir / "set/tokenizer.model")));
  EXPECT_EQ(tokenizer->hash(), set.manifest().tokenizer.hash);
  auto ids = read_split(set, "train");
  ASSERT_EQ(ids.back(), *tokenizer->end_of_text_id());  // one document, closed by end-of-text
  ids.pop_back();
  EXPECT_EQ(tokenizer->decode(ids), text);
  EXPECT_LT(ids.size(), text.size() / 2);
}
#endif

// SentencePiece would replace bytes that are not UTF-8, so no exact round trip: refused by name,
// while byte-level tokenizers keep any bytes. Too small a corpus for the asked vocabulary is said.
TEST(Prepare, SentencePieceRefusesTextThatIsNotUtf8) {
  if (!sentencepiece_available()) GTEST_SKIP() << "built without SentencePiece";
  testing::ScratchDir dir;
  std::string text = testing::sample_text(20'000, 3);
  text.insert(12'345, "\xff\xfe latin-1 \xe9t\xe9 ");
  testing::write_file(dir / "a.txt", text);
  PrepareOptions options;
  options.inputs = {dir / "a.txt"};
  options.output = dir / "set";
  options.train_tokenizer_vocab = 500;
  options.binary_ok = true;
  const std::string message = testing::error_of([&] { prepare_shards(options); });
  EXPECT_NE(message.find("a.txt: is not valid UTF-8 (byte 12345)"), std::string::npos) << message;
  EXPECT_FALSE(path_exists(options.output));
  options.train_tokenizer_vocab = 0;  // the byte tokenizer keeps them
  prepare_shards(options);
  EXPECT_EQ(make_byte_tokenizer()->decode(read_split(ShardSet::open(options.output), "train")).size() +
                read_split(ShardSet::open(options.output), "val").size(),
            text.size());
}

TEST(Prepare, EmptyCorpusIsAnErrorAndLeavesNothing) {
  testing::ScratchDir dir;
  testing::write_file(dir / "empty.txt", "");
  PrepareOptions options;
  options.inputs = {(dir / "empty.txt")};
  options.output = (dir / "set");
  EXPECT_NE(error_of([&] { prepare_shards(options); }).find("corpus is empty"), std::string::npos);
  EXPECT_FALSE(path_exists(dir / "set"));
  for (const auto& file : list_files_recursive(dir.path())) {
    EXPECT_EQ(file_name(file), "empty.txt") << file;  // no staging directory left behind
  }
}

TEST(Prepare, FailureMidwayKeepsThePreviousOutput) {
  testing::ScratchDir dir;
  testing::write_file(dir / "a.txt", testing::sample_text(5000, 1));
  PrepareOptions options;
  options.inputs = {(dir / "a.txt")};
  options.output = (dir / "set");
  prepare_shards(options);
  const std::string manifest_before = testing::read_file(dir / "set/manifest.json");
  // Second run: an llm.c file with an id outside --vocab-size fails after shards were started.
  write_llmc_file((dir / "t.bin"), testing::random_tokens(300'000, 1000, 2), TokenDtype::kUint16);
  PrepareOptions bad;
  bad.inputs = {(dir / "t.bin")};
  bad.output = options.output;
  bad.overwrite = true;
  bad.shard_tokens = 1024;
  bad.vocab_size = 999;
  EXPECT_NE(error_of([&] { prepare_shards(bad); }).find("not below the vocab size"), std::string::npos);
  EXPECT_EQ(testing::read_file(dir / "set/manifest.json"), manifest_before);
  EXPECT_NO_THROW(ShardSet::open(options.output).verify_all_checksums());
}

TEST(Prepare, ExistingOutputNeedsOverwrite) {
  testing::ScratchDir dir;
  testing::write_file(dir / "a.txt", "hello world");
  PrepareOptions options;
  options.inputs = {(dir / "a.txt")};
  options.output = (dir / "set");
  prepare_shards(options);
  EXPECT_NE(error_of([&] { prepare_shards(options); }).find("--overwrite"), std::string::npos);
  options.overwrite = true;
  EXPECT_NO_THROW(prepare_shards(options));
}

// --overwrite replaces a previous shard set only: a user's folder, a shard set holding a file of
// the user's, and the input itself are refused by name and left as they were.
// A killed prepare leaves its staging folder (OUTPUT.tmp-PID); the next prepare of that output
// removes it once process PID is gone, and nothing else.
TEST(Prepare, WhatAKilledPrepareLeftIsRemovedAtTheNextStart) {
  testing::ScratchDir dir;
  testing::write_file(dir / "corpus.txt", testing::sample_text(3000, 5));
  const std::string dead = std::to_string(0x3fffffff);  // above any pid_max: no such process
  testing::write_file(dir / ("set.tmp-" + dead + "/train-000000.h5"), "partial");
  testing::write_file(dir / ("set.tmp-" + std::to_string(::getppid()) + "/x"), "a live process's");
  testing::write_file(dir / "set.tmp-notes", "not a pid");
  testing::write_file(dir / ("settings.tmp-" + dead), "another name");
  PrepareOptions options;
  options.inputs = {(dir / "corpus.txt")};
  options.output = (dir / "set");
  prepare_shards(options);
  EXPECT_FALSE(path_exists(dir / ("set.tmp-" + dead)));
  EXPECT_TRUE(path_exists(dir / ("set.tmp-" + std::to_string(::getppid()) + "/x")));
  EXPECT_TRUE(path_exists(dir / "set.tmp-notes"));
  EXPECT_TRUE(path_exists(dir / ("settings.tmp-" + dead)));
}

// Files that do not look like text are refused by name (a program, UTF-16 text), unless
// --binary-ok; text with a few bytes that are not UTF-8 (Latin-1 accents) is still text.
TEST(Prepare, BinaryInputsAreRefusedUnlessBinaryOk) {
  testing::ScratchDir dir;
  std::string program =
      "\x7f"
      "ELF\x02\x01\x01";
  program += std::string(200, '\0') + testing::sample_text(2000, 6);
  testing::write_file(dir / "program", program);
  std::string utf16;
  for (const char c : testing::sample_text(2000, 7)) utf16 += {c, '\0'};
  testing::write_file(dir / "utf16.txt", utf16);
  std::string latin1 = testing::sample_text(5000, 8);
  for (std::size_t i = 0; i < latin1.size(); i += 100) latin1[i] = static_cast<char>(0xe9);  // 1 % 'é' in Latin-1
  testing::write_file(dir / "latin1.txt", latin1);
  PrepareOptions options;
  options.output = dir / "set";
  for (const char* name : {"program", "utf16.txt"}) {
    options.inputs = {dir / name};
    const std::string message = error_of([&] { prepare_shards(options); });
    EXPECT_EQ(message.rfind(dir / name + ": does not look like text: it holds a NUL byte", 0), 0u) << message;
    EXPECT_NE(message.find("--binary-ok"), std::string::npos) << message;
    EXPECT_FALSE(path_exists(dir / "set"));
  }
  std::string mostly_not_utf8(4000, static_cast<char>(0xff));
  testing::write_file(dir / "noise", mostly_not_utf8);
  options.inputs = {dir / "noise"};
  EXPECT_NE(error_of([&] { prepare_shards(options); }).find("are not UTF-8"), std::string::npos);
  options.inputs = {dir / "latin1.txt"};
  EXPECT_NO_THROW(prepare_shards(options));
  options.inputs = {dir / "program"};
  options.output = dir / "set-binary";
  options.binary_ok = true;
  EXPECT_NO_THROW(prepare_shards(options));
}

TEST(Prepare, OverwriteReplacesOnlyAShardSetAndNeverAnInput) {
  testing::ScratchDir dir;
  const std::string text = testing::sample_text(3000, 4);
  testing::write_file(dir / "corpus.txt", text);
  PrepareOptions options;
  options.inputs = {(dir / "corpus.txt")};
  options.overwrite = true;

  make_directories(dir / "project/src");
  testing::write_file(dir / "project/notes.txt", "mine");
  options.output = (dir / "project");
  const auto project = error_of([&] { prepare_shards(options); });
  EXPECT_NE(project.find("not a shard set"), std::string::npos) << project;
  EXPECT_EQ(testing::read_file(dir / "project/notes.txt"), "mine");
  EXPECT_TRUE(is_directory(dir / "project/src"));

  options.output = (dir / "set");
  prepare_shards(options);
  testing::write_file(dir / "set/notes.txt", "mine too");
  const auto extra = error_of([&] { prepare_shards(options); });
  EXPECT_NE(extra.find("notes.txt"), std::string::npos) << extra;
  EXPECT_EQ(testing::read_file(dir / "set/notes.txt"), "mine too");
  ::remove((dir / "set/notes.txt").c_str());
  EXPECT_NO_THROW(prepare_shards(options));  // a shard set alone is replaced

  for (const std::string& output : {dir / "corpus.txt", dir.path()}) {
    options.output = output;
    const auto input = error_of([&] { prepare_shards(options); });
    EXPECT_NE(input.find("--output"), std::string::npos) << input;
  }
  EXPECT_EQ(testing::read_file(dir / "corpus.txt"), text);
}

TEST(Prepare, BadInputsAreNamed) {
  testing::ScratchDir dir;
  PrepareOptions options;
  options.output = (dir / "set");
  options.inputs = {(dir / "missing.txt")};
  EXPECT_NE(error_of([&] { prepare_shards(options); }).find("missing.txt: does not exist"), std::string::npos);
  make_directories(dir / "emptydir");
  options.inputs = {(dir / "emptydir")};
  EXPECT_NE(error_of([&] { prepare_shards(options); }).find("no files"), std::string::npos);
  // uint16 cannot hold a 70000-id vocabulary.
  write_llmc_file((dir / "t.bin"), testing::random_tokens(100, 1000, 2), TokenDtype::kUint16);
  options.inputs = {(dir / "t.bin")};
  options.vocab_size = 70'000;
  options.dtype = "uint16";
  EXPECT_NE(error_of([&] { prepare_shards(options); }).find("--dtype"), std::string::npos);
  // Mixing text and token files.
  testing::write_file(dir / "a.txt", "text");
  options = PrepareOptions{};
  options.output = (dir / "set");
  options.inputs = {(dir / "t.bin"), (dir / "a.txt")};
  EXPECT_NE(error_of([&] { prepare_shards(options); }).find("mixes"), std::string::npos);
}

}  // namespace
}  // namespace aios
