// Compiled only when libsentencepiece-dev is found (AIOS_WITH_SENTENCEPIECE).
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <unordered_map>

#include "base/checksum.h"
#include "base/error.h"
#include "data/tokenizer.h"

namespace aios {
namespace {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& path) : path_(path), hash_(crc32_of_file(path)) {
    const auto status = processor_.Load(path);
    if (!status.ok()) {
      throw Error(path, "is not a SentencePiece model (" + status.ToString() + ")",
                  "a .model file written by SentencePiece or `aios prepare --train-tokenizer`");
    }
    if (processor_.GetPieceSize() <= 0) throw Error(path, "SentencePiece model has no pieces");
  }

  std::string kind() const override { return "sentencepiece"; }
  std::vector<File> files() const override { return {{path_, "tokenizer.model"}}; }
  std::string hash() const override { return hash_; }
  std::int64_t vocab_size() const override { return processor_.GetPieceSize(); }
  std::optional<std::uint32_t> end_of_text_id() const override {
    const int eos = processor_.eos_id();
    if (eos < 0) return std::nullopt;
    return static_cast<std::uint32_t>(eos);
  }

  void encode(std::string_view text, std::vector<std::uint32_t>& ids) const override {
    std::vector<int> pieces;
    const auto status = processor_.Encode({text.data(), text.size()}, &pieces);
    if (!status.ok()) throw Error("sentencepiece", "encode failed: " + status.ToString());
    ids.insert(ids.end(), pieces.begin(), pieces.end());
  }

  std::string decode(std::span<const std::uint32_t> ids) const override {
    std::vector<int> pieces(ids.begin(), ids.end());
    std::string text;
    const auto status = processor_.Decode(pieces, &text);
    if (!status.ok()) throw Error("sentencepiece", "decode failed: " + status.ToString());
    return text;
  }

 private:
  sentencepiece::SentencePieceProcessor processor_;
  std::string path_;
  std::string hash_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& path) {
  return std::make_unique<SentencePieceTokenizer>(path);
}

std::string train_sentencepiece_model(const std::vector<std::string>& inputs, std::int64_t vocab_size,
                                      const std::string& model_prefix) {
  if (vocab_size < 300 || vocab_size > 1'000'000) {
    throw Error("--train-tokenizer", "vocab size " + std::to_string(vocab_size) + " is out of range",
                "300..1000000 (byte fallback alone takes 259 ids)");
  }
  std::string input_list;
  for (const auto& input : inputs) input_list += (input_list.empty() ? "" : ",") + input;
  // Identity normalization, no dummy prefix, kept whitespace and byte fallback make
  // decode(encode(text)) == text for any UTF-8 or binary input.
  const std::unordered_map<std::string, std::string> args = {{"input", input_list},
                                                             {"model_prefix", model_prefix},
                                                             {"vocab_size", std::to_string(vocab_size)},
                                                             {"model_type", "bpe"},
                                                             {"normalization_rule_name", "identity"},
                                                             {"add_dummy_prefix", "false"},
                                                             {"remove_extra_whitespaces", "false"},
                                                             {"byte_fallback", "true"},
                                                             {"split_digits", "true"},
                                                             {"character_coverage", "0.9995"},
                                                             {"input_sentence_size", "2000000"},
                                                             {"shuffle_input_sentence", "true"},
                                                             {"max_sentence_length", "65536"},
                                                             {"allow_whitespace_only_pieces", "true"},
                                                             {"hard_vocab_limit", "false"},
                                                             {"minloglevel", "2"}};
  // The sentence sample is shuffled: a fixed seed makes the trained model reproducible.
  sentencepiece::SetRandomGeneratorSeed(1234);
  const auto status = sentencepiece::SentencePieceTrainer::Train(args);
  if (!status.ok()) {
    throw Error("--train-tokenizer", "SentencePiece training failed: " + status.ToString());
  }
  return model_prefix + ".model";
}

}  // namespace aios
