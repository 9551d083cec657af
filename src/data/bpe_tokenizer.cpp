#include "data/bpe_tokenizer.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <functional>
#include <queue>
#include <string_view>

#include "base/error.h"
#include "data/pretokenizer.h"

namespace aios {
namespace {

// Heterogeneous lookup: pieces are looked up as string_views without building strings.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using IdsByBytes = std::unordered_map<std::string, std::uint32_t, StringHash, std::equal_to<>>;

// FNV-1a, 64 bits: the tokenizer's identity in manifests (not a defence against tampering).
class Fnv1a {
 public:
  void update(std::string_view bytes) {
    for (const unsigned char c : bytes) value_ = (value_ ^ c) * 0x100000001b3ULL;
  }
  void update_number(std::uint64_t n) { update(std::string_view(reinterpret_cast<const char*>(&n), sizeof n)); }
  std::string hex() const {
    char text[17];
    std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value_));
    return text;
  }

 private:
  std::uint64_t value_ = 0xcbf29ce484222325ULL;
};

// Pieces already encoded, per thread: natural text repeats its words, so most pieces are found
// here instead of merged again. Each tokenizer has its own serial so that a cache never answers
// for another tokenizer that happens to reuse an address.
struct PieceCache {
  std::uint64_t owner = 0;
  std::unordered_map<std::string, std::vector<std::uint32_t>, StringHash, std::equal_to<>> ids;
};
constexpr std::size_t kPieceCacheEntries = 1 << 18;
std::atomic<std::uint64_t> next_tokenizer_serial{1};

class BpeTokenizer final : public Tokenizer {
 public:
  explicit BpeTokenizer(BpeModel model)
      : model_(std::move(model)),
        pretokenizer_(model_.split_pattern, model_.files.empty() ? "tokenizer" : model_.files.front().path),
        serial_(next_tokenizer_serial++) {
    const std::string where = model_.files.empty() ? "tokenizer" : model_.files.front().path;
    byte_ids_.fill(kNone);
    for (std::uint32_t id = 0; id < model_.token_bytes.size(); ++id) {
      const std::string& bytes = model_.token_bytes[id];
      if (bytes.empty()) continue;
      ids_.emplace(bytes, id);
      if (bytes.size() == 1) byte_ids_[static_cast<unsigned char>(bytes[0])] = id;
    }
    for (int b = 0; b < 256; ++b) {
      if (byte_ids_[b] == kNone) {
        throw Error(where, "has no token for the byte " + std::to_string(b) + ", so it is not a byte-level BPE",
                    "a byte-level BPE tokenizer (GPT-2's family), or a SentencePiece .model");
      }
    }
    const auto vocab = static_cast<std::uint64_t>(vocab_size());
    for (const auto& [key, merge] : model_.merges) {
      if ((key >> 32) >= vocab || (key & 0xffffffffULL) >= vocab || merge.merged >= vocab) {
        throw Error(where, "has a merge naming an id outside its vocabulary of " + std::to_string(vocab),
                    "a tokenizer whose merges name its own tokens");
      }
    }
    Fnv1a hash;  // the ids, not the file format: GPT-2 read from any of its three forms hashes alike
    hash.update(model_.split_pattern);
    std::size_t hashed = model_.token_bytes.size();  // unused ids at the end (a special token's) do not count
    while (hashed > 0 && model_.token_bytes[hashed - 1].empty()) --hashed;
    for (std::size_t id = 0; id < hashed; ++id) {
      hash.update_number(model_.token_bytes[id].size());
      hash.update(model_.token_bytes[id]);
    }
    for (const auto& [text, id] : model_.special_tokens) {
      hash.update_number(id);
      hash.update(text);
    }
    hash_ = hash.hex();
  }

  std::string kind() const override { return "bpe"; }
  std::string hash() const override { return hash_; }
  std::int64_t vocab_size() const override {
    std::size_t size = model_.token_bytes.size();
    for (const auto& special : model_.special_tokens) size = std::max<std::size_t>(size, special.second + 1);
    return static_cast<std::int64_t>(size);
  }
  std::optional<std::uint32_t> end_of_text_id() const override { return model_.end_of_text_id; }
  std::vector<File> files() const override { return model_.files; }

  void encode(std::string_view text, std::vector<std::uint32_t>& ids) const override {
    thread_local PieceCache cache;
    if (cache.owner != serial_ || cache.ids.size() > kPieceCacheEntries) {
      cache.ids.clear();
      cache.owner = serial_;
    }
    pretokenizer_.split(text, [&](std::size_t begin, std::size_t end) {
      const std::string_view piece = text.substr(begin, end - begin);
      if (piece.size() == 1) {
        ids.push_back(byte_ids_[static_cast<unsigned char>(piece[0])]);
        return;
      }
      if (model_.whole_piece_first) {
        if (const auto found = ids_.find(piece); found != ids_.end()) {
          ids.push_back(found->second);
          return;
        }
      }
      if (const auto found = cache.ids.find(piece); found != cache.ids.end()) {
        ids.insert(ids.end(), found->second.begin(), found->second.end());
        return;
      }
      const std::size_t start = ids.size();
      merge_piece(piece, ids);
      cache.ids.emplace(std::string(piece), std::vector<std::uint32_t>(ids.begin() + start, ids.end()));
    });
  }

  std::string decode(std::span<const std::uint32_t> ids) const override {
    std::string text;
    for (const std::uint32_t id : ids) {
      if (id < model_.token_bytes.size() && !model_.token_bytes[id].empty()) {
        text += model_.token_bytes[id];
        continue;
      }
      const auto special = std::find_if(model_.special_tokens.begin(), model_.special_tokens.end(),
                                        [id](const auto& s) { return s.second == id; });
      if (special == model_.special_tokens.end()) {
        throw Error("tokenizer", "id " + std::to_string(id) + " is not in the vocabulary",
                    "ids below " + std::to_string(vocab_size()) + " that name a token");
      }
      text += special->first;
    }
    return text;
  }

  // A cut right after a newline that follows a printable ASCII character and precedes an ASCII
  // letter or digit ends a piece under every pattern aios ships: no alternative reaches across a
  // newline into a letter or digit, and none ends at the newline differently when the text ends
  // there (`\s++$` and `\s+(?!\S)` take only the newline, as they do within the text).
  std::size_t split_point(std::string_view text) const override {
    for (std::size_t i = text.size(); i >= 2; --i) {
      const auto before = static_cast<unsigned char>(text[i - 2]);
      if (text[i - 1] != '\n' || before < 0x21 || before > 0x7e) continue;
      if (i == text.size()) continue;  // the next character is unknown
      const char next = text[i];
      if ((next >= 'a' && next <= 'z') || (next >= 'A' && next <= 'Z') || (next >= '0' && next <= '9')) return i;
    }
    return 0;
  }

 private:
  static constexpr std::uint32_t kNone = 0xffffffffU;

  const BpeMerge* find_merge(std::uint32_t left, std::uint32_t right) const {
    const auto found = model_.merges.find(bpe_pair_key(left, right));
    return found == model_.merges.end() ? nullptr : &found->second;
  }

  // Merges the piece's bytes: always the adjacent pair of lowest rank, the leftmost on a tie (as
  // Hugging Face's and tiktoken's BPE do). A heap of candidate pairs over a linked list keeps
  // long pieces (runs of CJK, digits or symbols) at O(n log n); stale entries are skipped.
  void merge_piece(std::string_view piece, std::vector<std::uint32_t>& out) const {
    const auto n = static_cast<std::int32_t>(piece.size());
    std::vector<std::uint32_t> id(static_cast<std::size_t>(n));
    std::vector<std::int32_t> prev(static_cast<std::size_t>(n)), next(static_cast<std::size_t>(n));
    for (std::int32_t i = 0; i < n; ++i) {
      id[i] = byte_ids_[static_cast<unsigned char>(piece[i])];
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    struct Candidate {
      std::uint32_t rank;
      std::int32_t left;  // position of the left token (its first byte)
      std::uint32_t left_id, right_id;
      bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
    };
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
    const auto push = [&](std::int32_t left) {
      if (left < 0 || next[left] < 0) return;
      if (const BpeMerge* merge = find_merge(id[left], id[next[left]])) {
        heap.push({merge->rank, left, id[left], id[next[left]]});
      }
    };
    for (std::int32_t i = 0; i + 1 < n; ++i) push(i);
    while (!heap.empty()) {
      const Candidate c = heap.top();
      heap.pop();
      const std::int32_t right = next[c.left];
      // Stale: a neighbour changed since this pair was pushed (merged positions have id kNone).
      if (id[c.left] != c.left_id || right < 0 || id[right] != c.right_id) continue;
      id[c.left] = find_merge(c.left_id, c.right_id)->merged;
      id[right] = kNone;
      next[c.left] = next[right];
      if (next[right] >= 0) prev[next[right]] = c.left;
      push(prev[c.left]);
      push(c.left);
    }
    for (std::int32_t i = 0; i >= 0; i = next[i]) out.push_back(id[i]);
  }

  BpeModel model_;
  Pretokenizer pretokenizer_;
  std::uint64_t serial_;
  IdsByBytes ids_;
  std::array<std::uint32_t, 256> byte_ids_{};
  std::string hash_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_bpe_tokenizer(BpeModel model) {
  return std::make_unique<BpeTokenizer>(std::move(model));
}

}  // namespace aios
