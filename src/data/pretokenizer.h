// The regular expression that cuts text into pieces before byte-level BPE merges within each
// piece (GPT-2, cl100k, o200k and Hugging Face `Split` patterns). Matching is PCRE2's, with `\s`
// rewritten to Unicode's White_Space set (PCRE2's own `\s` also takes U+180E and misses none of
// it), so that pieces equal those of tiktoken (Rust regex) and Hugging Face tokenizers
// (Oniguruma). Text that no alternative matches (invalid UTF-8) becomes pieces of its own, so
// every byte of the input lands in exactly one piece.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace aios {

// The patterns of the tokenizers aios knows by name.
std::string_view gpt2_split_pattern();    // GPT-2, r50k_base, p50k_base (tiktoken's form)
std::string_view cl100k_split_pattern();  // cl100k_base
std::string_view o200k_split_pattern();   // o200k_base

class Pretokenizer {
 public:
  // `where` names the file or option the pattern came from, for the error of a pattern PCRE2
  // cannot compile.
  Pretokenizer(std::string_view pattern, const std::string& where);
  ~Pretokenizer();
  Pretokenizer(const Pretokenizer&) = delete;
  Pretokenizer& operator=(const Pretokenizer&) = delete;

  // Calls on_piece(begin, end) for consecutive pieces covering text[0, text.size()). Safe to
  // call from several threads at once.
  template <typename OnPiece>
  void split(std::string_view text, OnPiece&& on_piece) const {
    std::size_t position = 0;
    while (position < text.size()) {
      std::size_t begin = 0, end = 0;
      if (!next_match(text, position, begin, end)) begin = end = text.size();
      if (begin > position) on_piece(position, begin);  // unmatched bytes: a piece of their own
      if (end > begin) on_piece(begin, end);
      position = end;
    }
  }

  const std::string& pattern() const { return pattern_; }

 private:
  // The first match at or after `from`: [begin, end). False when there is none.
  bool next_match(std::string_view text, std::size_t from, std::size_t& begin, std::size_t& end) const;

  std::string pattern_;
  struct Compiled;
  std::unique_ptr<Compiled> compiled_;
};

}  // namespace aios
