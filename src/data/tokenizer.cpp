#include "data/tokenizer.h"

#include <fstream>

#include "base/error.h"
#include "base/files.h"
#include "data/bpe_files.h"

namespace aios {

#if AIOS_WITH_SENTENCEPIECE
std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& path);
std::string train_sentencepiece_model(const std::vector<std::string>& inputs, std::int64_t vocab_size,
                                      const std::string& model_prefix);
bool sentencepiece_available() { return true; }
#else
bool sentencepiece_available() { return false; }
#endif

namespace {

std::string read_file_head(const std::string& path, std::size_t bytes) {
  std::ifstream file(path, std::ios::binary);
  std::string head(bytes, '\0');
  file.read(head.data(), static_cast<std::streamsize>(bytes));
  head.resize(static_cast<std::size_t>(file.gcount()));
  return head;
}

constexpr const char* kAccepted =
    "'byte', a directory holding tokenizer.json, vocab.json + merges.txt, a .tiktoken file or tokenizer.model, "
    "or one of those files";

std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& path, const std::string& option) {
#if AIOS_WITH_SENTENCEPIECE
  (void)option;
  return load_sentencepiece_tokenizer(path);
#else
  throw Error(option, "this build of aios has no SentencePiece support (" + path + ")",
              "a BPE tokenizer, 'byte', or rebuild with libsentencepiece-dev installed");
#endif
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& spec, const std::string& option) {
  if (spec == "byte") return make_byte_tokenizer();
  if (is_directory(spec)) {
    if (auto bpe = read_bpe_directory(spec)) return make_bpe_tokenizer(std::move(*bpe));
    if (const auto model = join_path(spec, "tokenizer.model"); is_regular_file(model)) {
      return load_sentencepiece(model, option);
    }
    throw Error(option, "directory '" + spec + "' holds no tokenizer files", kAccepted);
  }
  if (!is_regular_file(spec)) throw Error(option, "'" + spec + "' is neither 'byte' nor an existing file", kAccepted);
  const std::string name = file_name(spec);
  if (file_extension(name) == ".tiktoken") return make_bpe_tokenizer(read_tiktoken_ranks(spec));
  if (file_extension(name) == ".json") {
    if (name == "vocab.json")
      return make_bpe_tokenizer(read_vocab_and_merges(spec, join_path(parent_path(spec), "merges.txt")));
    return make_bpe_tokenizer(read_hf_tokenizer_json(spec));
  }
  if (name == "merges.txt") {
    return make_bpe_tokenizer(read_vocab_and_merges(join_path(parent_path(spec), "vocab.json"), spec));
  }
  if (file_extension(name) == ".model") return load_sentencepiece(spec, option);
  // Another name (tiktoken's cache names files by a hash): by what the file starts with.
  const std::string head = read_file_head(spec, 256);
  if (!head.empty() && head.front() == '{') return make_bpe_tokenizer(read_hf_tokenizer_json(spec));
  const auto space = head.find(' ');
  const auto digits_end = head.find_first_not_of("0123456789", space + 1);
  if (space != std::string::npos && space > 0 &&
      head.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") == space &&
      digits_end > space + 1 && digits_end != std::string::npos && head[digits_end] == '\n') {
    return make_bpe_tokenizer(read_tiktoken_ranks(spec));
  }
  throw Error(option, "'" + spec + "' is not a tokenizer file aios reads", kAccepted);
}

std::unique_ptr<Tokenizer> load_shard_set_tokenizer(const std::string& directory, const std::string& kind) {
  if (kind == "byte") return make_byte_tokenizer();
  if (kind == "llmc-import") {
    throw Error(directory, "holds llm.c token files, which come without a tokenizer to read or write text",
                "shards prepared from text (aios prepare --tokenizer ...)");
  }
  return load_tokenizer(directory, directory);
}

std::string train_sentencepiece(const std::vector<std::string>& inputs, std::int64_t vocab_size,
                                const std::string& model_prefix) {
#if AIOS_WITH_SENTENCEPIECE
  return train_sentencepiece_model(inputs, vocab_size, model_prefix);
#else
  (void)inputs, (void)vocab_size, (void)model_prefix;
  throw Error("--train-tokenizer", "this build of aios has no SentencePiece support",
              "rebuild with libsentencepiece-dev installed");
#endif
}

}  // namespace aios
