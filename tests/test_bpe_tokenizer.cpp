// Byte-level BPE against Hugging Face `tokenizers` on a committed fixture (made by
// tests/reference/make_bpe_fixture.py); the same against tiktoken and on several MB of text runs
// in tests/reference/check_bpe_tokenizers.py.
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <random>

#include "base/error.h"
#include "data/bpe_files.h"
#include "data/bpe_tokenizer.h"
#include "data/parallel_encode.h"
#include "data/prepare.h"
#include "data/pretokenizer.h"
#include "data/shard_set.h"
#include "data/tokenizer.h"
#include "test_support.h"

#if AIOS_WITH_PCRE2
namespace aios {
namespace {

const std::string kFixture = std::string(AIOS_SOURCE_DIR) + "/tests/reference/bpe_tiny";

struct Expected {
  std::string text;
  std::vector<std::uint32_t> ids;
  std::uint32_t end_of_text_id = 0;
};

Expected expected() {
  const auto json = nlohmann::json::parse(testing::read_file(kFixture + "/expected.json"));
  return {json["text"].get<std::string>(), json["ids"].get<std::vector<std::uint32_t>>(),
          json["end_of_text_id"].get<std::uint32_t>()};
}

std::vector<std::uint32_t> encode(const Tokenizer& tokenizer, std::string_view text) {
  std::vector<std::uint32_t> ids;
  tokenizer.encode(text, ids);
  return ids;
}

TEST(BpeTokenizer, IdsEqualHuggingFaceTokenizersFromTokenizerJsonAndFromVocabAndMerges) {
  const Expected want = expected();
  for (const std::string spec : {kFixture + "/tokenizer.json", kFixture + "/vocab.json", kFixture}) {
    SCOPED_TRACE(spec);
    const auto tokenizer = load_tokenizer(spec);
    EXPECT_EQ(tokenizer->kind(), "bpe");
    EXPECT_EQ(encode(*tokenizer, want.text), want.ids);
    EXPECT_EQ(tokenizer->decode(want.ids), want.text);
    EXPECT_EQ(tokenizer->end_of_text_id(), want.end_of_text_id);
  }
  // The identity is the ids, not the file format.
  EXPECT_EQ(load_tokenizer(kFixture + "/tokenizer.json")->hash(), load_tokenizer(kFixture + "/vocab.json")->hash());
  EXPECT_NE(load_tokenizer(kFixture)->hash(), make_byte_tokenizer()->hash());
}

// llm.c's GPT-2 token files have no tokenizer file to hash: prepare records this constant for them,
// so it must be what GPT-2's own ranks hash to (scripts/fetch_reference_tokenizers.sh fetches them).
TEST(BpeTokenizer, Gpt2RanksHashToTheIdentityRecordedForLlmcGpt2Files) {
  const char* env = std::getenv("AIOS_REFERENCE_TOKENIZERS");
  const std::string dir = env ? env : std::string(std::getenv("HOME")) + "/.cache/aios/reference-tokenizers";
  const auto tokenizer = load_tokenizer(dir + "/gpt2.tiktoken");
  EXPECT_EQ(tokenizer->hash(), kGpt2TokenizerHash);
  EXPECT_EQ(tokenizer->vocab_size(), 50257);
  EXPECT_EQ(tokenizer->end_of_text_id(), 50256u);
}

TEST(BpeTokenizer, RoundTripsAnyBytesIncludingInvalidUtf8) {
  const auto tokenizer = load_tokenizer(kFixture + "/tokenizer.json");
  std::mt19937 rng(5);
  for (int trial = 0; trial < 20; ++trial) {
    std::string bytes(1 + rng() % 2000, '\0');
    for (auto& b : bytes)
      b = static_cast<char>(trial % 2 ? rng() % 256 : "ab \n\xc3\xa9\xe6\x97\xa5\xff\x80"[rng() % 11]);
    EXPECT_EQ(tokenizer->decode(encode(*tokenizer, bytes)), bytes);
  }
}

TEST(BpeTokenizer, TextCutAtSplitPointsEncodesAsTheWhole) {
  const auto tokenizer = load_tokenizer(kFixture);
  const std::string text = expected().text + testing::sample_text(20000, 3);
  const auto whole = encode(*tokenizer, text);
  int cuts = 0;
  for (std::size_t target = 500; target < text.size(); target += 997) {
    const std::size_t cut = tokenizer->split_point(std::string_view(text).substr(0, target));
    if (cut == 0) continue;
    ++cuts;
    auto parts = encode(*tokenizer, std::string_view(text).substr(0, cut));
    const auto rest = encode(*tokenizer, std::string_view(text).substr(cut));
    parts.insert(parts.end(), rest.begin(), rest.end());
    ASSERT_EQ(parts, whole) << "cut at byte " << cut;
  }
  EXPECT_GT(cuts, 10);
  // Where no cut is safe, none is offered: a newline before two newlines, or after a space.
  EXPECT_EQ(tokenizer->split_point("abc\n\n\nxyz"), 0u);
  EXPECT_EQ(tokenizer->split_point("abc \nxyz"), 0u);
  EXPECT_EQ(tokenizer->split_point("abc\nxyz"), 4u);
}

TEST(BpeTokenizer, ParallelEncodingEqualsOneThread) {
  const auto tokenizer = load_tokenizer(kFixture);
  const std::string text = testing::sample_text(200000, 9) + expected().text;
  const auto one = encode(*tokenizer, text);
  for (const int threads : {2, 3, 8}) {
    std::vector<std::uint32_t> ids;
    EXPECT_EQ(encode_in_parallel(*tokenizer, text, true, threads, ids, /*min_part_bytes=*/1000), text.size());
    EXPECT_EQ(ids, one) << threads << " threads";
  }
  // Not final: up to the last split point, the rest left for more text.
  std::vector<std::uint32_t> ids;
  const std::size_t used = encode_in_parallel(*tokenizer, text, false, 4, ids, 1000);
  EXPECT_GT(used, 0u);
  EXPECT_LT(used, text.size());
  EXPECT_EQ(ids, encode(*tokenizer, std::string_view(text).substr(0, used)));
}

TEST(Pretokenizer, WhiteSpaceIsUnicodesNotPcresOwn) {
  const Pretokenizer gpt2(gpt2_split_pattern(), "test");
  const auto pieces = [&](const std::string& text) {
    std::vector<std::string> out;
    gpt2.split(text, [&](std::size_t b, std::size_t e) { out.push_back(text.substr(b, e - b)); });
    return out;
  };
  // U+0085 (NEL) is White_Space; U+180E is not (PCRE2's \s takes it): it is a symbol piece.
  EXPECT_EQ(pieces("a\u0085\u0085b"), (std::vector<std::string>{"a", "\u0085", "\u0085", "b"}));
  EXPECT_EQ(pieces("a\u180E\u180Eb"), (std::vector<std::string>{"a", "\u180E\u180E", "b"}));
  EXPECT_EQ(pieces("it's  42 \n"), (std::vector<std::string>{"it", "'s", " ", " 42", " \n"}));
  // Invalid UTF-8 matches nothing: it becomes a piece of its own and no byte is lost.
  EXPECT_EQ(pieces("ab\xff\xfe cd"), (std::vector<std::string>{"ab", "\xff\xfe", " cd"}));
}

TEST(BpeTokenizer, PrepareCopiesTheTokenizerBesideTheShardsAndEncodesAcrossBlocks) {
  testing::ScratchDir dir;
  // Over one 4 MiB block, so that text carried from one block to the next is covered.
  std::string text = expected().text;
  while (text.size() < (5u << 20)) text += testing::sample_text(1 << 20, static_cast<std::uint32_t>(text.size()));
  testing::write_file(dir / "a.txt", text);
  PrepareOptions options;
  options.inputs = {dir / "a.txt"};
  options.output = dir / "set";
  options.tokenizer = kFixture;
  options.val_fraction = 0;
  options.threads = 3;
  prepare_shards(options);
  const ShardSet set = ShardSet::open(options.output);
  const auto& record = set.manifest().tokenizer;
  EXPECT_EQ(record.kind, "bpe");
  EXPECT_EQ(record.files, std::vector<std::string>{"tokenizer.json"});
  const auto tokenizer = load_tokenizer(set.directory());
  EXPECT_EQ(tokenizer->hash(), record.hash);
  EXPECT_EQ(record.hash, load_tokenizer(kFixture)->hash());
  auto ids = testing::read_split(set, "train");
  ASSERT_EQ(ids.back(), expected().end_of_text_id);
  ids.pop_back();
  EXPECT_EQ(ids, encode(*tokenizer, text));
  // --overwrite replaces a set whose tokenizer files it wrote.
  options.overwrite = true;
  EXPECT_NO_THROW(prepare_shards(options));
}

TEST(BpeFiles, EachBadFileIsOneErrorNamingIt) {
  testing::ScratchDir dir;
  const auto error_for = [&](const std::string& name, const std::string& contents) {
    testing::write_file(dir / name, contents);
    return testing::error_of([&] { load_tokenizer(dir / name); });
  };
  EXPECT_NE(error_for("bad.json", "{not json").find("bad.json: is not valid JSON"), std::string::npos);
  EXPECT_NE(error_for("wp.json", R"({"model": {"type": "WordPiece"}})").find("is not a Hugging Face BPE"),
            std::string::npos);
  const std::string with_normalizer =
      R"({"normalizer": {"type": "NFC"}, "pre_tokenizer": {"type": "ByteLevel"},
          "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})";
  EXPECT_NE(error_for("norm.json", with_normalizer).find("has a normalizer"), std::string::npos);
  const std::string missing_bytes = R"({"pre_tokenizer": {"type": "ByteLevel"},
          "model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": []}})";
  EXPECT_NE(error_for("small.json", missing_bytes).find("has no token for the byte"), std::string::npos);
  EXPECT_NE(error_for("x.tiktoken", "YQ== 0\nYg== 1\n").find("has 2 ranks"), std::string::npos);
  EXPECT_NE(error_for("y.tiktoken", "YQ== zero\n").find("y.tiktoken:1: is not a tiktoken rank line"),
            std::string::npos);
  testing::write_file(dir / "lone/vocab.json", R"({"a": 0})");
  EXPECT_NE(testing::error_of([&] { load_tokenizer(dir / "lone/vocab.json"); }).find("merges.txt: is missing"),
            std::string::npos);
  make_directories(dir / "empty");
  EXPECT_NE(testing::error_of([&] { load_tokenizer(dir / "empty"); }).find("holds no tokenizer files"),
            std::string::npos);
  EXPECT_NE(error_for("notes.txt", "hello").find("is not a tokenizer file aios reads"), std::string::npos);
}

}  // namespace
}  // namespace aios
#endif
