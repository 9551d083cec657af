#include <gtest/gtest.h>

#include "base/error.h"
#include "data/tokenizer.h"
#include "test_support.h"

namespace aios {
namespace {

TEST(ByteTokenizer, RoundTripsEveryByteValue) {
  auto tokenizer = make_byte_tokenizer();
  std::string text;
  for (int i = 0; i < 256; ++i) text += static_cast<char>(i);
  text += testing::sample_text(5000, 1);
  std::vector<std::uint32_t> ids;
  tokenizer->encode(text, ids);
  ASSERT_EQ(ids.size(), text.size());
  EXPECT_EQ(ids[0], 0u);
  EXPECT_EQ(ids[255], 255u);
  EXPECT_EQ(tokenizer->decode(ids), text);
  EXPECT_EQ(tokenizer->vocab_size(), 256);
  EXPECT_FALSE(tokenizer->end_of_text_id().has_value());
}

TEST(ByteTokenizer, RejectsIdsOutsideTheVocabulary) {
  auto tokenizer = make_byte_tokenizer();
  std::vector<std::uint32_t> ids = {65, 256};
  EXPECT_THROW(tokenizer->decode(ids), Error);
}

TEST(LoadTokenizer, NamesTheSpecWhenNeitherByteNorAFile) {
  try {
    load_tokenizer("no/such/tokenizer.model");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--tokenizer"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("no/such/tokenizer.model"), std::string::npos);
  }
}

#if AIOS_WITH_SENTENCEPIECE
TEST(SentencePieceTokenizer, TrainedModelRoundTripsExactly) {
  testing::ScratchDir dir;
  testing::write_file(dir / "corpus.txt", testing::sample_text(200'000, 7));
  const std::string model = train_sentencepiece({(dir / "corpus.txt")}, 400, ((dir / "sp")));
  auto tokenizer = load_tokenizer(model);
  EXPECT_EQ(tokenizer->kind(), "sentencepiece");
  EXPECT_EQ(tokenizer->vocab_size(), 400);
  // Unseen text with leading/trailing/double spaces, tabs, newlines and characters not in training.
  const std::string text = "  leading spaces\tand tabs\n\nnew   lines, émojis 🙂 and Ω≈ç√ \r\n end ";
  std::vector<std::uint32_t> ids;
  tokenizer->encode(text, ids);
  EXPECT_LT(ids.size(), text.size());  // it does merge pieces
  EXPECT_EQ(tokenizer->decode(ids), text);
  const std::string corpus_piece = testing::sample_text(3000, 99);
  ids.clear();
  tokenizer->encode(corpus_piece, ids);
  EXPECT_EQ(tokenizer->decode(ids), corpus_piece);
  EXPECT_LT(ids.size(), corpus_piece.size() / 2);
}

TEST(SentencePieceTokenizer, RejectsAFileThatIsNotAModel) {
  testing::ScratchDir dir;
  testing::write_file(dir / "fake.model", "this is not a protobuf");
  try {
    load_tokenizer(((dir / "fake.model")));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fake.model"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("not a SentencePiece model"), std::string::npos);
  }
}
#endif

}  // namespace
}  // namespace aios
