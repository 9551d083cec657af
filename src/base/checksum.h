// CRC-32 (zlib's polynomial) over the bytes of stored token arrays. It is there to catch a shard
// that was truncated, corrupted or swapped behind the manifest's back, not to resist tampering.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace aios {

class Crc32 {
 public:
  void update(const void* data, std::size_t size);
  std::uint32_t value() const { return value_; }
  std::string hex() const;  // eight lowercase hex digits, as stored in manifest.json

 private:
  std::uint32_t value_ = 0;
};

// CRC-32 of a whole file, for identifying tokenizer model files.
std::string crc32_of_file(const std::string& path);

}  // namespace aios
