#include "data/tokenizer.h"

#include "base/error.h"
#include "base/files.h"

namespace aios {

#if AIOS_WITH_SENTENCEPIECE
std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& path);
std::string train_sentencepiece_model(const std::vector<std::string>& inputs, std::int64_t vocab_size,
                                      const std::string& model_prefix);
bool sentencepiece_available() { return true; }
#else
bool sentencepiece_available() { return false; }
#endif

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& spec) {
  if (spec == "byte") return make_byte_tokenizer();
  if (!is_regular_file(spec)) {
    throw Error("--tokenizer", "'" + spec + "' is neither 'byte' nor an existing file",
                "'byte' or the path of a SentencePiece .model file");
  }
#if AIOS_WITH_SENTENCEPIECE
  return load_sentencepiece_tokenizer(spec);
#else
  throw Error("--tokenizer", "this build of aios has no SentencePiece support (" + spec + ")",
              "'byte', or rebuild with libsentencepiece-dev installed");
#endif
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
