// Text <-> token ids. Three kinds: the built-in byte tokenizer (vocab 256, needs no file),
// byte-level BPE (GPT-2's family: Hugging Face tokenizer.json, vocab.json + merges.txt, tiktoken
// rank files; data/bpe_tokenizer.h) and SentencePiece models. Each round-trips exactly:
// decode(encode(text)) == text for the byte tokenizer and byte-level BPE on any bytes, and for
// SentencePiece models trained by `aios prepare --train-tokenizer` (identity normalization, byte
// fallback, no dummy prefix).
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

  virtual std::string kind() const = 0;  // "byte", "bpe" or "sentencepiece"
  // Identifies the vocabulary: the same (kind, hash) means the same ids for the same text.
  virtual std::string hash() const = 0;
  virtual std::int64_t vocab_size() const = 0;
  // Token appended after each document, if the tokenizer has one.
  virtual std::optional<std::uint32_t> end_of_text_id() const = 0;

  // Appends the ids of `text` to `ids`.
  virtual void encode(std::string_view text, std::vector<std::uint32_t>& ids) const = 0;
  virtual std::string decode(std::span<const std::uint32_t> ids) const = 0;

  // The files that define it, entry point first, and the name each takes when copied beside
  // shards (so that load_tokenizer(shard set directory) finds them); none for "byte".
  struct File {
    std::string path, name;
  };
  virtual std::vector<File> files() const { return {}; }
  // The end of the longest prefix of `text` that encodes alone as it does within `text`, so that
  // text may be encoded in pieces cut there (in parallel); 0 when no cut is known to be safe.
  // Unless a tokenizer knows better: after the last newline.
  virtual std::size_t split_point(std::string_view text) const {
    const auto newline = text.rfind('\n');
    return newline == std::string_view::npos ? 0 : newline + 1;
  }
};

// spec: "byte"; a directory holding tokenizer.json, vocab.json + merges.txt, one .tiktoken file or
// tokenizer.model (looked for in that order); or one of those files. `option` names where the spec
// came from in errors ("--tokenizer", a manifest...).
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& spec, const std::string& option = "--tokenizer");

std::unique_ptr<Tokenizer> make_byte_tokenizer();

// The tokenizer of a shard set: "byte", or the files prepare copied into `directory`.
std::unique_ptr<Tokenizer> load_shard_set_tokenizer(const std::string& directory, const std::string& kind);

// Trains a SentencePiece BPE model on `inputs` (text files) and writes `<model_prefix>.model`.
// Returns the path of the model file. Throws when this build has no SentencePiece.
std::string train_sentencepiece(const std::vector<std::string>& inputs, std::int64_t vocab_size,
                                const std::string& model_prefix);

bool sentencepiece_available();

}  // namespace aios
