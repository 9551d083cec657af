// One HDF5 shard file: a 1-D dataset "tokens" (uint16 where the vocabulary fits, else uint32,
// contiguous so that a window is one hyperslab read), a dataset "doc_offsets" (uint64: the index
// of every document start inside this shard) and attributes naming the vocabulary.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace aios {

enum class TokenDtype { kUint16, kUint32 };

std::string to_string(TokenDtype dtype);
TokenDtype token_dtype_from_string(const std::string& name, const std::string& where);
int bytes_per_token(TokenDtype dtype);
// The smallest dtype that holds ids 0..vocab_size-1.
TokenDtype smallest_dtype_for(std::int64_t vocab_size);

struct ShardAttributes {
  std::string split;            // "train" or "val"
  std::int64_t vocab_size = 0;  // every id is < vocab_size
  std::string tokenizer_kind;   // "byte", "sentencepiece", "llmc-import"
  std::string tokenizer_hash;
  std::optional<std::uint32_t> end_of_text_id;
};

struct ShardSummary {
  std::int64_t tokens = 0;
  std::int64_t documents = 0;
  std::string crc32;  // of the stored little-endian token bytes
};

// Writes a complete shard file. Throws if an id does not fit `dtype` or is >= vocab_size.
ShardSummary write_shard_file(const std::string& path, std::span<const std::uint32_t> tokens,
                              std::span<const std::uint64_t> doc_offsets, TokenDtype dtype,
                              const ShardAttributes& attributes);

// Reads windows of a shard through hyperslab selections; never loads the whole file.
class ShardFileReader {
 public:
  explicit ShardFileReader(const std::string& path);
  ~ShardFileReader();
  ShardFileReader(ShardFileReader&&) noexcept;
  ShardFileReader& operator=(ShardFileReader&&) noexcept;

  const std::string& path() const;
  std::int64_t size() const;  // tokens
  TokenDtype dtype() const;
  const ShardAttributes& attributes() const;
  std::vector<std::uint64_t> doc_offsets() const;

  // Copies tokens [start, start + count) into out, widened to int64 (what embedding lookups take).
  void read(std::int64_t start, std::int64_t count, std::int64_t* out) const;
  void read(std::int64_t start, std::int64_t count, std::uint32_t* out) const;
  // CRC-32 of the whole token array, read in 1 Mi-token pieces.
  std::string compute_crc32() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace aios
