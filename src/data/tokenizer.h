// Text <-> token ids. Two kinds: the built-in byte tokenizer (vocab 256, needs no file) and
// SentencePiece models. Both round-trip exactly: decode(encode(text)) == text for the byte
// tokenizer always, and for SentencePiece models trained by `aios prepare --train-tokenizer`
// (identity normalization, byte fallback, no dummy prefix).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace aios {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  virtual std::string kind() const = 0;  // "byte" or "sentencepiece"
  // Identifies the vocabulary: the same (kind, hash) means the same ids for the same text.
  virtual std::string hash() const = 0;
  virtual std::int64_t vocab_size() const = 0;
  // Token appended after each document, if the tokenizer has one.
  virtual std::optional<std::uint32_t> end_of_text_id() const = 0;

  // Appends the ids of `text` to `ids`.
  virtual void encode(std::string_view text, std::vector<std::uint32_t>& ids) const = 0;
  virtual std::string decode(std::span<const std::uint32_t> ids) const = 0;
};

// spec: "byte" or the path of a SentencePiece `.model` file.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& spec);

std::unique_ptr<Tokenizer> make_byte_tokenizer();

// Trains a SentencePiece BPE model on `inputs` (text files) and writes `<model_prefix>.model`.
// Returns the path of the model file. Throws when this build has no SentencePiece.
std::string train_sentencepiece(const std::vector<std::string>& inputs, std::int64_t vocab_size,
                                const std::string& model_prefix);

bool sentencepiece_available();

}  // namespace aios
