#include "data/pretokenizer.h"

#if AIOS_WITH_PCRE2
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#endif

#include "base/error.h"

namespace aios {

std::string_view gpt2_split_pattern() {
  return R"('(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s)";
}

std::string_view cl100k_split_pattern() {
  return R"('(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s)";
}

std::string_view o200k_split_pattern() {
  return R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
         R"(|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
         R"(|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
}

#if AIOS_WITH_PCRE2
namespace {

// Unicode's White_Space property, which Rust's and Oniguruma's `\s` match.
constexpr std::string_view kWhiteSpace =
    R"(\t\n\x{0B}\f\r\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

std::string with_unicode_white_space(std::string_view pattern, const std::string& where) {
  std::string out;
  bool in_class = false;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char next = pattern[++i];
      if (next == 's') {
        out += in_class ? std::string(kWhiteSpace) : "[" + std::string(kWhiteSpace) + "]";
      } else if (next == 'S') {
        if (in_class) {
          throw Error(where, "the split pattern uses \\S inside a character class",
                      "a pattern with \\S outside brackets (as GPT-2's, cl100k's and o200k's)");
        }
        out += "[^" + std::string(kWhiteSpace) + "]";
      } else {
        out += c;
        out += next;
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // A ']' (or '^]') right after the bracket is a literal, not the end of the class.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
      continue;
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

}  // namespace

struct Pretokenizer::Compiled {
  pcre2_code* code = nullptr;
  ~Compiled() { pcre2_code_free(code); }
};

Pretokenizer::Pretokenizer(std::string_view pattern, const std::string& where)
    : pattern_(pattern), compiled_(std::make_unique<Compiled>()) {
  const std::string translated = with_unicode_white_space(pattern, where);
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  // DOLLAR_ENDONLY: `$` is the end of the text, as in Rust's regex, not also before a final newline.
  compiled_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                                  PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | PCRE2_DOLLAR_ENDONLY, &error_code,
                                  &error_offset, nullptr);
  if (compiled_->code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof message);
    throw Error(where, "split pattern does not compile (" + std::string(reinterpret_cast<char*>(message)) + ")",
                "a regular expression in PCRE/Oniguruma syntax");
  }
  pcre2_jit_compile(compiled_->code, PCRE2_JIT_COMPLETE);  // without JIT, matching still works, slower
}

Pretokenizer::~Pretokenizer() = default;

bool Pretokenizer::next_match(std::string_view text, std::size_t from, std::size_t& begin, std::size_t& end) const {
  struct MatchData {
    pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
    ~MatchData() { pcre2_match_data_free(data); }
  };
  thread_local MatchData match;
  const int rc = pcre2_match(compiled_->code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), from, 0,
                             match.data, nullptr);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc < 0 && rc != 0) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(rc, message, sizeof message);
    throw Error("tokenizer", "pattern matching failed (" + std::string(reinterpret_cast<char*>(message)) + ")");
  }
  const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match.data);
  begin = ovector[0];
  end = ovector[1];
  // No pattern aios takes matches the empty string; one that does must still move on.
  if (end == begin) end = begin + 1;
  return true;
}

#else  // without PCRE2: byte-level BPE is refused where it is asked for

struct Pretokenizer::Compiled {};

Pretokenizer::Pretokenizer(std::string_view pattern, const std::string& where) : pattern_(pattern) {
  throw Error(where, "this build of aios has no PCRE2, which byte-level BPE tokenizers need",
              "'byte' or a SentencePiece model, or rebuild with libpcre2-dev installed");
}

Pretokenizer::~Pretokenizer() = default;

bool Pretokenizer::next_match(std::string_view, std::size_t, std::size_t&, std::size_t&) const { return false; }

#endif

}  // namespace aios
