// Token files in karpathy/llm.c's format (dev/data/data_common.py): a header of 256 int32
// (magic, version, token count, rest zero) followed by the tokens. GPT-2 files use magic
// 20240520, version 1, uint16 tokens; Llama-3 files use magic 20240801, version 7, uint32.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "data/shard_file.h"

namespace aios {

inline constexpr std::int32_t kLlmcGpt2Magic = 20240520;
inline constexpr std::int32_t kLlmcLlama3Magic = 20240801;

struct LlmcHeader {
  std::int32_t magic = 0;
  std::int32_t version = 0;
  std::int64_t tokens = 0;
  TokenDtype dtype = TokenDtype::kUint16;
  std::int64_t default_vocab_size = 0;    // 50257 (GPT-2) or 128256 (Llama 3)
  std::uint32_t default_end_of_text = 0;  // 50256 <|endoftext|> or 128000 <|begin_of_text|>
};

bool looks_like_llmc_file(const std::string& path);

// Reads and checks the header, and that the file holds exactly the tokens it announces.
LlmcHeader read_llmc_header(const std::string& path);

// Streams the tokens in pieces of at most `piece_tokens`.
void read_llmc_tokens(const std::string& path, std::int64_t piece_tokens,
                      const std::function<void(std::span<const std::uint32_t>)>& on_tokens);

// Writes a file in the same format (used by tests and to export shards for llm.c).
void write_llmc_file(const std::string& path, std::span<const std::uint32_t> tokens, TokenDtype dtype);

}  // namespace aios
