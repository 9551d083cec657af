#include "base/checksum.h"

#include <zlib.h>

#include <cstdio>
#include <fstream>
#include <limits>
#include <vector>

#include "base/error.h"

namespace aios {

void Crc32::update(const void* data, std::size_t size) {
  auto* bytes = static_cast<const Bytef*>(data);
  // zlib's length argument is a uInt: feed very large buffers in pieces.
  constexpr std::size_t kMaxPiece = std::numeric_limits<uInt>::max() / 2;
  while (size > 0) {
    const std::size_t piece = size < kMaxPiece ? size : kMaxPiece;
    value_ = static_cast<std::uint32_t>(crc32(value_, bytes, static_cast<uInt>(piece)));
    bytes += piece;
    size -= piece;
  }
}

std::string Crc32::hex() const {
  char text[9];
  std::snprintf(text, sizeof(text), "%08x", value_);
  return text;
}

std::string crc32_of_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path, "cannot be opened for reading");
  Crc32 crc;
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    crc.update(buffer.data(), static_cast<std::size_t>(in.gcount()));
  }
  return crc.hex();
}

}  // namespace aios
