#include "data/bpe_files.h"

#include <array>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "base/error.h"
#include "base/files.h"
#include "data/pretokenizer.h"

namespace aios {
namespace {

constexpr const char* kAccepted =
    "a byte-level BPE tokenizer: tokenizer.json, vocab.json + merges.txt, or a .tiktoken file";

// GPT-2's byte-level alphabet: every byte is written as one printable code point, so that vocab
// and merges files hold no control characters or spaces. Printable Latin-1 bytes stand for
// themselves; the others take the code points from 256 up, in byte order.
std::unordered_map<std::uint32_t, char> byte_level_alphabet() {
  std::unordered_map<std::uint32_t, char> bytes;
  std::uint32_t next = 256;
  for (std::uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    bytes[printable ? b : next++] = static_cast<char>(b);
  }
  return bytes;
}

// A vocab or merges string in the byte-level alphabet -> the bytes it stands for; nullopt when it
// has a code point outside the alphabet (or is not UTF-8).
std::optional<std::string> byte_level_to_bytes(std::string_view text) {
  static const auto alphabet = byte_level_alphabet();
  std::string bytes;
  for (std::size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    const int length = lead < 0x80 ? 1 : (lead >> 5) == 6 ? 2 : (lead >> 4) == 14 ? 3 : (lead >> 3) == 30 ? 4 : 0;
    if (length == 0 || i + length > text.size()) return std::nullopt;
    std::uint32_t code = length == 1 ? lead : lead & (0x7f >> length);
    for (int k = 1; k < length; ++k) code = (code << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3f);
    const auto found = alphabet.find(code);
    if (found == alphabet.end()) return std::nullopt;
    bytes += found->second;
    i += static_cast<std::size_t>(length);
  }
  return bytes;
}

nlohmann::json read_json(const std::string& path) {
  if (!is_regular_file(path)) throw Error(path, "does not exist or is not a file", kAccepted);
  try {
    return nlohmann::json::parse(read_text_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(path, std::string("is not valid JSON (") + e.what() + ")", kAccepted);
  }
}

// vocab: token string (byte-level alphabet) -> id. Tokens outside the alphabet (added tokens such
// as <|endoftext|> are within it, but a tokenizer may list others) are kept as special tokens.
void read_vocab(const nlohmann::json& vocab, const std::string& path, BpeModel& model,
                std::unordered_map<std::string, std::uint32_t>& ids) {
  if (!vocab.is_object() || vocab.empty()) {
    throw Error(path, "has no vocabulary object of token -> id", kAccepted);
  }
  for (const auto& [text, value] : vocab.items()) {
    if (!value.is_number_unsigned() || value.get<std::uint64_t>() >= (1ULL << 31)) {
      throw Error(path, "gives token '" + text + "' the id " + value.dump(), "ids 0 .. 2^31-1");
    }
    const auto id = value.get<std::uint32_t>();
    if (model.token_bytes.size() <= id) model.token_bytes.resize(id + 1);
    const auto bytes = byte_level_to_bytes(text);
    if (!bytes) {
      model.special_tokens.emplace_back(text, id);
      continue;
    }
    model.token_bytes[id] = *bytes;
    ids.emplace(*bytes, id);
  }
}

void add_merge(std::string_view left_text, std::string_view right_text, std::uint32_t rank, const std::string& path,
               const std::unordered_map<std::string, std::uint32_t>& ids, BpeModel& model) {
  const auto left = byte_level_to_bytes(left_text), right = byte_level_to_bytes(right_text);
  const auto id_of = [&](const std::optional<std::string>& bytes) -> std::optional<std::uint32_t> {
    if (!bytes) return std::nullopt;
    const auto found = ids.find(*bytes);
    return found == ids.end() ? std::nullopt : std::optional<std::uint32_t>(found->second);
  };
  const auto l = id_of(left), r = id_of(right);
  const auto merged = left && right ? id_of(*left + *right) : std::nullopt;
  if (!l || !r || !merged) {
    throw Error(path,
                "merge " + std::to_string(rank) + " ('" + std::string(left_text) + "' '" + std::string(right_text) +
                    "') names a token that is not in the vocabulary",
                "merges whose two parts and result are all tokens of the vocabulary");
  }
  model.merges.emplace(bpe_pair_key(*l, *r), BpeMerge{rank, *merged});  // the first (lowest) rank wins
}

// Added tokens are never produced by encode: they leave the byte vocabulary for the special list.
void mark_special(BpeModel& model, const std::string& text, std::uint32_t id) {
  if (id < model.token_bytes.size()) model.token_bytes[id].clear();
  for (const auto& special : model.special_tokens) {
    if (special.second == id) return;
  }
  model.special_tokens.emplace_back(text, id);
}

void find_end_of_text(BpeModel& model) {
  for (const char* name : {"<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>"}) {
    for (const auto& [text, id] : model.special_tokens) {
      if (text == name) {
        model.end_of_text_id = id;
        return;
      }
    }
  }
}

std::string string_field(const nlohmann::json& object, const char* key) {
  const auto found = object.find(key);
  return found == object.end() || !found->is_string() ? std::string() : found->get<std::string>();
}

// Hugging Face matches Split patterns with Oniguruma, whose default (Ruby) syntax reads `X{1,3}+`
// as `(?:X{1,3})+` (one or more X), where PCRE2 would read a possessive {1,3}. Rewritten so that
// PCRE2 finds Oniguruma's pieces; `?+`, `*+` and `++` are possessive in both.
std::string oniguruma_intervals_for_pcre(const std::string& pattern, const std::string& path) {
  std::string out;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '\\' && i + 1 < pattern.size()) {
      out += pattern.substr(i, 2);
      ++i;
      continue;
    }
    if (pattern[i] == '{') {
      const auto close = pattern.find('}', i);
      const bool numeric =
          close != std::string::npos && close > i + 1 && pattern.find_first_not_of("0123456789,", i + 1) == close;
      if (numeric && close + 1 < pattern.size() && pattern[close + 1] == '+') {
        if (pattern.compare(i, 3, "{1,") != 0 && pattern.compare(i, 3, "{1}") != 0) {
          throw Error(path,
                      "has a split pattern with " + pattern.substr(i, close + 2 - i) +
                          ", which Oniguruma reads as a repeated interval that aios does not rewrite",
                      "intervals starting at 1 before a '+', or without the '+'");
        }
        out += "{1,}";
        i = close + 1;
        continue;
      }
    }
    out += pattern[i];
  }
  return out;
}

// The split pattern of a tokenizer.json pre-tokenizer aios can reproduce exactly.
std::string hf_split_pattern(const nlohmann::json& pre, const std::string& path) {
  const std::string refused = "a ByteLevel pre-tokenizer, or a Sequence of one Split regex and ByteLevel";
  const auto check_byte_level = [&](const nlohmann::json& byte_level) {
    if (byte_level.value("add_prefix_space", false)) {
      throw Error(path, "has a ByteLevel pre-tokenizer with add_prefix_space, which aios does not reproduce",
                  "add_prefix_space: false (GPT-2's setting)");
    }
  };
  const std::string type = pre.is_object() ? string_field(pre, "type") : "";
  if (type == "ByteLevel") {
    check_byte_level(pre);
    if (!pre.value("use_regex", true)) throw Error(path, "has a ByteLevel pre-tokenizer without its regex", refused);
    return std::string(gpt2_split_pattern());  // the same pieces as Hugging Face's own form of GPT-2's regex
  }
  if (type == "Sequence" && pre.contains("pretokenizers") && pre["pretokenizers"].size() == 2) {
    const auto& split = pre["pretokenizers"][0];
    const auto& byte_level = pre["pretokenizers"][1];
    if (string_field(split, "type") == "Split" && string_field(byte_level, "type") == "ByteLevel" &&
        split.contains("pattern") && split["pattern"].contains("Regex") &&
        string_field(split, "behavior") == "Isolated" && !split.value("invert", false)) {
      check_byte_level(byte_level);
      return oniguruma_intervals_for_pcre(split["pattern"]["Regex"].get<std::string>(), path);
    }
  }
  throw Error(path, "has a pre-tokenizer aios does not reproduce (" + pre.dump().substr(0, 120) + ")", refused);
}

}  // namespace

BpeModel read_hf_tokenizer_json(const std::string& path) {
  const nlohmann::json json = read_json(path);
  if (!json.is_object() || !json.contains("model") || string_field(json["model"], "type") != "BPE") {
    throw Error(path, "is not a Hugging Face BPE tokenizer (model.type is not \"BPE\")", kAccepted);
  }
  const auto& m = json["model"];
  if (m.contains("dropout") && !m["dropout"].is_null() && m["dropout"].get<double>() != 0) {
    throw Error(path, "has BPE dropout, which makes encoding random", "dropout: null");
  }
  if (!string_field(m, "continuing_subword_prefix").empty() || !string_field(m, "end_of_word_suffix").empty()) {
    throw Error(path, "uses word prefixes or suffixes (a WordPiece-style BPE), not byte-level BPE", kAccepted);
  }
  if (json.contains("normalizer") && !json["normalizer"].is_null()) {
    const auto& normalizer = json["normalizer"];
    const bool empty_sequence = string_field(normalizer, "type") == "Sequence" && normalizer.contains("normalizers") &&
                                normalizer["normalizers"].empty();
    if (!empty_sequence) {
      throw Error(path, "has a normalizer (" + normalizer.dump().substr(0, 80) + "), which aios does not apply",
                  "normalizer: null");
    }
  }
  BpeModel model;
  model.format = "tokenizer.json";
  model.files = {{path, "tokenizer.json"}};
  model.split_pattern = hf_split_pattern(json.value("pre_tokenizer", nlohmann::json()), path);
  model.whole_piece_first = m.value("ignore_merges", false);
  std::unordered_map<std::string, std::uint32_t> ids;
  read_vocab(m.value("vocab", nlohmann::json()), path, model, ids);
  if (!m.contains("merges") || !m["merges"].is_array()) throw Error(path, "has no merges list", kAccepted);
  std::uint32_t rank = 0;
  for (const auto& merge : m["merges"]) {
    if (merge.is_string()) {
      const std::string text = merge.get<std::string>();
      const auto space = text.find(' ');
      if (space == std::string::npos)
        throw Error(path, "has a merge without a space: '" + text + "'", "\"left right\"");
      add_merge(std::string_view(text).substr(0, space), std::string_view(text).substr(space + 1), rank, path, ids,
                model);
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
      add_merge(merge[0].get<std::string>(), merge[1].get<std::string>(), rank, path, ids, model);
    } else {
      throw Error(path, "has a merge that is neither \"a b\" nor [\"a\", \"b\"]: " + merge.dump(), kAccepted);
    }
    ++rank;
  }
  for (const auto& added : json.value("added_tokens", nlohmann::json::array())) {
    if (added.contains("id") && added.contains("content")) {
      mark_special(model, added["content"].get<std::string>(), added["id"].get<std::uint32_t>());
    }
  }
  find_end_of_text(model);
  return model;
}

BpeModel read_vocab_and_merges(const std::string& vocab_path, const std::string& merges_path) {
  BpeModel model;
  model.format = "vocab.json+merges.txt";
  model.files = {{vocab_path, "vocab.json"}, {merges_path, "merges.txt"}};
  model.split_pattern = std::string(gpt2_split_pattern());
  std::unordered_map<std::string, std::uint32_t> ids;
  read_vocab(read_json(vocab_path), vocab_path, model, ids);
  if (!is_regular_file(merges_path)) {
    throw Error(merges_path, "is missing (vocab.json needs the merges.txt beside it)", kAccepted);
  }
  std::istringstream lines(read_text_file(merges_path));
  std::string line;
  std::uint32_t rank = 0;
  for (std::size_t number = 1; std::getline(lines, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (number == 1 && line.rfind("#version", 0) == 0)) continue;
    const auto space = line.find(' ');
    if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos) {
      throw Error(merges_path + ":" + std::to_string(number), "is not a merge '" + line + "'",
                  "two tokens separated by one space");
    }
    add_merge(std::string_view(line).substr(0, space), std::string_view(line).substr(space + 1), rank++, merges_path,
              ids, model);
  }
  for (const char* name : {"<|endoftext|>"}) {
    for (std::uint32_t id = 0; id < model.token_bytes.size(); ++id) {
      if (model.token_bytes[id] == name) mark_special(model, name, id);
    }
  }
  find_end_of_text(model);
  return model;
}

namespace {

std::string decode_base64(std::string_view text, const std::string& where) {
  static const auto table = [] {
    std::array<int, 256> t{};
    t.fill(-1);
    const std::string_view digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (std::size_t i = 0; i < digits.size(); ++i) t[static_cast<unsigned char>(digits[i])] = static_cast<int>(i);
    return t;
  }();
  std::string bytes;
  std::uint32_t bits = 0;
  int count = 0;
  for (const char c : text) {
    if (c == '=') break;
    const int value = table[static_cast<unsigned char>(c)];
    if (value < 0) throw Error(where, "has a token that is not base64: '" + std::string(text) + "'", "base64 tokens");
    bits = (bits << 6) | static_cast<std::uint32_t>(value);
    count += 6;
    if (count >= 8) {
      count -= 8;
      bytes += static_cast<char>((bits >> count) & 0xff);
    }
  }
  return bytes;
}

// tiktoken's encodings by their number of ranks: the split pattern and special tokens go with the
// ranks but are not in the file.
struct TiktokenEncoding {
  std::size_t ranks;
  const char* name;
  std::string_view (*pattern)();
  std::vector<std::pair<std::string, std::uint32_t>> special_tokens;
};

const std::vector<TiktokenEncoding>& tiktoken_encodings() {
  static const std::vector<TiktokenEncoding> encodings = {
      {50256, "r50k_base (GPT-2)", gpt2_split_pattern, {{"<|endoftext|>", 50256}}},
      {50280, "p50k_base", gpt2_split_pattern, {{"<|endoftext|>", 50256}}},
      {100256,
       "cl100k_base",
       cl100k_split_pattern,
       {{"<|endoftext|>", 100257},
        {"<|fim_prefix|>", 100258},
        {"<|fim_middle|>", 100259},
        {"<|fim_suffix|>", 100260},
        {"<|endofprompt|>", 100276}}},
      {199998, "o200k_base", o200k_split_pattern, {{"<|endoftext|>", 199999}, {"<|endofprompt|>", 200018}}},
  };
  return encodings;
}

}  // namespace

BpeModel read_tiktoken_ranks(const std::string& path) {
  if (!is_regular_file(path)) throw Error(path, "does not exist or is not a file", kAccepted);
  BpeModel model;
  model.format = "tiktoken";
  model.files = {{path, "tokenizer.tiktoken"}};
  model.whole_piece_first = true;
  std::unordered_map<std::string, std::uint32_t> ids;
  std::istringstream lines(read_text_file(path));
  std::string line;
  for (std::size_t number = 1; std::getline(lines, line); ++number) {
    if (line.empty()) continue;
    const auto space = line.find(' ');
    const std::string where = path + ":" + std::to_string(number);
    std::uint32_t rank = 0;
    try {
      if (space == std::string::npos) throw std::invalid_argument("no rank");
      std::size_t used = 0;
      rank = static_cast<std::uint32_t>(std::stoul(line.substr(space + 1), &used));
      if (used != line.size() - space - 1) throw std::invalid_argument("trailing text");
    } catch (const std::exception&) {
      throw Error(where, "is not a tiktoken rank line '" + line.substr(0, 60) + "'", "'<base64 token> <rank>'");
    }
    if (rank >= (1U << 31)) throw Error(where, "has rank " + std::to_string(rank), "ranks below 2^31");
    const std::string bytes = decode_base64(std::string_view(line).substr(0, space), where);
    if (model.token_bytes.size() <= rank) model.token_bytes.resize(rank + 1);
    model.token_bytes[rank] = bytes;
    ids.emplace(bytes, rank);
  }
  const auto encoding = std::find_if(tiktoken_encodings().begin(), tiktoken_encodings().end(),
                                     [&](const auto& e) { return e.ranks == ids.size(); });
  if (encoding == tiktoken_encodings().end()) {
    throw Error(path,
                "has " + std::to_string(ids.size()) + " ranks, which is not one of tiktoken's encodings aios knows",
                "r50k_base/gpt2 (50256 ranks), p50k_base (50280), cl100k_base (100256) or o200k_base (199998)");
  }
  model.split_pattern = std::string(encoding->pattern());
  model.special_tokens = encoding->special_tokens;
  for (const auto& [text, id] : model.special_tokens) {
    if (id < model.token_bytes.size() && !model.token_bytes[id].empty()) {
      throw Error(path, "gives rank " + std::to_string(id) + " to a token, where " + encoding->name + " has " + text,
                  "the rank file of " + std::string(encoding->name) + " as tiktoken ships it");
    }
  }
  // tiktoken merges the adjacent pair whose concatenation has the lowest rank: as merges, every
  // split of every token into two tokens, ranked by the whole token's rank.
  for (std::uint32_t rank = 0; rank < model.token_bytes.size(); ++rank) {
    const std::string& bytes = model.token_bytes[rank];
    for (std::size_t cut = 1; cut < bytes.size(); ++cut) {
      const auto left = ids.find(bytes.substr(0, cut));
      const auto right = ids.find(bytes.substr(cut));
      if (left != ids.end() && right != ids.end()) {
        model.merges.emplace(bpe_pair_key(left->second, right->second), BpeMerge{rank, rank});
      }
    }
  }
  find_end_of_text(model);
  return model;
}

std::optional<BpeModel> read_bpe_directory(const std::string& directory) {
  if (const auto json = join_path(directory, "tokenizer.json"); is_regular_file(json)) {
    return read_hf_tokenizer_json(json);
  }
  if (const auto vocab = join_path(directory, "vocab.json"); is_regular_file(vocab)) {
    return read_vocab_and_merges(vocab, join_path(directory, "merges.txt"));
  }
  std::vector<std::string> ranks;
  for (const auto& name : list_directory(directory)) {
    if (file_extension(name) == ".tiktoken") ranks.push_back(join_path(directory, name));
  }
  if (ranks.size() > 1) {
    throw Error(directory, "holds " + std::to_string(ranks.size()) + " .tiktoken files",
                "one, or name the file itself");
  }
  if (ranks.size() == 1) return read_tiktoken_ranks(ranks.front());
  return std::nullopt;
}

}  // namespace aios
