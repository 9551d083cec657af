// Byte-level BPE, the tokenizer of GPT-2 and of its successors (cl100k, o200k, Llama 3): text is
// cut into pieces by a regular expression (data/pretokenizer.h), each piece's UTF-8 bytes start as
// one token each, and the adjacent pair of lowest merge rank is merged until none is left. Read
// from a Hugging Face tokenizer.json, from vocab.json + merges.txt, or from a tiktoken rank file
// (data/bpe_files.cpp). Ids equal those of Hugging Face `tokenizers` and of tiktoken's
// encode_ordinary: special tokens written in the text are encoded as text, never as their id.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "data/tokenizer.h"

namespace aios {

struct BpeMerge {
  std::uint32_t rank = 0;    // lower merges first
  std::uint32_t merged = 0;  // the id of the two tokens' concatenation
};

// Everything that decides the ids of a byte-level BPE tokenizer.
struct BpeModel {
  std::vector<std::string> token_bytes;  // [vocab] id -> the token's bytes; "" for an unused id
  // Added tokens such as <|endoftext|>: decoded to their text, never produced by encode.
  std::vector<std::pair<std::string, std::uint32_t>> special_tokens;
  std::unordered_map<std::uint64_t, BpeMerge> merges;  // (left id << 32 | right id) -> merge
  std::string split_pattern;
  // A piece that is itself a token is that token, whatever the merges would make of it
  // (tiktoken always; Hugging Face with "ignore_merges").
  bool whole_piece_first = false;
  std::optional<std::uint32_t> end_of_text_id;
  std::string format;                  // "tokenizer.json", "vocab.json+merges.txt" or "tiktoken"
  std::vector<Tokenizer::File> files;  // the files it was read from, entry point first
};

// The identity (Tokenizer::hash) of GPT-2's tokenizer, in any of its forms: Hugging Face's
// tokenizer.json or vocab.json + merges.txt, tiktoken's r50k_base/gpt2 ranks, and llm.c's GPT-2
// token files, which carry no tokenizer file to hash.
inline constexpr const char* kGpt2TokenizerHash = "d68ee04bb5e3a18c";

inline std::uint64_t bpe_pair_key(std::uint32_t left, std::uint32_t right) {
  return (static_cast<std::uint64_t>(left) << 32) | right;
}

// Checks the model (every byte is a token, merges name existing ids) and throws naming
// model.files.front() when it is not usable.
std::unique_ptr<Tokenizer> make_bpe_tokenizer(BpeModel model);

}  // namespace aios
