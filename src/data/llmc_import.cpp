#include "data/llmc_import.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "base/error.h"
#include "base/files.h"

namespace aios {
namespace {

constexpr std::size_t kHeaderInts = 256;
constexpr std::size_t kHeaderBytes = kHeaderInts * sizeof(std::int32_t);

using File = std::unique_ptr<FILE, int (*)(FILE*)>;

File open_file(const std::string& path, const char* mode) {
  File file(std::fopen(path.c_str(), mode), &std::fclose);
  if (!file) throw Error(path, std::string("cannot be opened: ") + std::strerror(errno));
  return file;
}

}  // namespace

bool looks_like_llmc_file(const std::string& path) {
  File file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) return false;
  std::int32_t magic = 0;
  if (std::fread(&magic, sizeof(magic), 1, file.get()) != 1) return false;
  return magic == kLlmcGpt2Magic || magic == kLlmcLlama3Magic;
}

LlmcHeader read_llmc_header(const std::string& path) {
  File file = open_file(path, "rb");
  std::array<std::int32_t, kHeaderInts> header{};
  if (std::fread(header.data(), sizeof(std::int32_t), kHeaderInts, file.get()) != kHeaderInts) {
    throw Error(path, "is shorter than the 1024-byte llm.c header");
  }
  LlmcHeader h;
  h.magic = header[0];
  h.version = header[1];
  h.tokens = static_cast<std::uint32_t>(header[2]);
  if (h.magic == kLlmcGpt2Magic && h.version == 1) {
    h.dtype = TokenDtype::kUint16;
    h.default_vocab_size = 50257;
    h.default_end_of_text = 50256;
  } else if (h.magic == kLlmcLlama3Magic && h.version == 7) {
    h.dtype = TokenDtype::kUint32;
    h.default_vocab_size = 128256;
    h.default_end_of_text = 128000;
  } else {
    throw Error(path, "llm.c header has magic " + std::to_string(h.magic) + " version " + std::to_string(h.version),
                "magic 20240520 version 1 (GPT-2, uint16) or magic 20240801 version 7 (Llama 3, uint32)");
  }
  const auto expected = static_cast<std::int64_t>(kHeaderBytes) + h.tokens * bytes_per_token(h.dtype);
  const std::int64_t actual = file_size(path);
  if (actual != expected) {
    throw Error(path,
                "holds " + std::to_string(actual) + " bytes but its header announces " + std::to_string(h.tokens) +
                    " tokens (" + std::to_string(expected) + " bytes)",
                "a complete llm.c token file (truncated download?)");
  }
  return h;
}

void read_llmc_tokens(const std::string& path, std::int64_t piece_tokens,
                      const std::function<void(std::span<const std::uint32_t>)>& on_tokens) {
  const LlmcHeader header = read_llmc_header(path);
  File file = open_file(path, "rb");
  std::fseek(file.get(), static_cast<long>(kHeaderBytes), SEEK_SET);
  std::vector<std::uint16_t> narrow;
  std::vector<std::uint32_t> wide(static_cast<std::size_t>(piece_tokens));
  if (header.dtype == TokenDtype::kUint16) narrow.resize(static_cast<std::size_t>(piece_tokens));
  for (std::int64_t done = 0; done < header.tokens;) {
    const auto count = static_cast<std::size_t>(std::min(piece_tokens, header.tokens - done));
    std::size_t got = 0;
    if (header.dtype == TokenDtype::kUint16) {
      got = std::fread(narrow.data(), sizeof(std::uint16_t), count, file.get());
      std::copy(narrow.begin(), narrow.begin() + static_cast<std::ptrdiff_t>(got), wide.begin());
    } else {
      got = std::fread(wide.data(), sizeof(std::uint32_t), count, file.get());
    }
    if (got != count) throw Error(path, "read error after " + std::to_string(done) + " tokens");
    on_tokens(std::span<const std::uint32_t>(wide.data(), count));
    done += static_cast<std::int64_t>(count);
  }
}

void write_llmc_file(const std::string& path, std::span<const std::uint32_t> tokens, TokenDtype dtype) {
  File file = open_file(path, "wb");
  std::array<std::int32_t, kHeaderInts> header{};
  header[0] = dtype == TokenDtype::kUint16 ? kLlmcGpt2Magic : kLlmcLlama3Magic;
  header[1] = dtype == TokenDtype::kUint16 ? 1 : 7;
  header[2] = static_cast<std::int32_t>(tokens.size());
  std::fwrite(header.data(), sizeof(std::int32_t), kHeaderInts, file.get());
  if (dtype == TokenDtype::kUint16) {
    std::vector<std::uint16_t> narrow(tokens.begin(), tokens.end());
    std::fwrite(narrow.data(), sizeof(std::uint16_t), narrow.size(), file.get());
  } else {
    std::fwrite(tokens.data(), sizeof(std::uint32_t), tokens.size(), file.get());
  }
  if (std::fflush(file.get()) != 0) throw Error(path, "write failed");
}

}  // namespace aios
