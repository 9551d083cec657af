#include <algorithm>

#include "base/error.h"
#include "data/tokenizer.h"

namespace aios {
namespace {

// Every byte is its own token. No end-of-text id: vocab stays 256 and uint8 text maps 1:1;
// document boundaries are kept in the shards' doc_offsets instead.
class ByteTokenizer final : public Tokenizer {
 public:
  std::string kind() const override { return "byte"; }
  std::string hash() const override { return "byte-v1"; }
  std::int64_t vocab_size() const override { return 256; }
  std::optional<std::uint32_t> end_of_text_id() const override { return std::nullopt; }

  void encode(std::string_view text, std::vector<std::uint32_t>& ids) const override {
    const std::size_t start = ids.size();
    ids.resize(start + text.size());
    std::transform(text.begin(), text.end(), ids.begin() + static_cast<std::ptrdiff_t>(start),
                   [](char c) { return static_cast<std::uint32_t>(static_cast<unsigned char>(c)); });
  }

  std::size_t split_point(std::string_view text) const override { return text.size(); }

  std::string decode(std::span<const std::uint32_t> ids) const override {
    std::string text(ids.size(), '\0');
    for (std::size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] > 255) {
        throw Error("byte tokenizer", "id " + std::to_string(ids[i]) + " is out of range", "ids 0..255");
      }
      text[i] = static_cast<char>(ids[i]);
    }
    return text;
  }
};

}  // namespace

std::unique_ptr<Tokenizer> make_byte_tokenizer() { return std::make_unique<ByteTokenizer>(); }

}  // namespace aios
