// The files byte-level BPE tokenizers come in, read into a BpeModel (data/bpe_tokenizer.h):
//   tokenizer.json            Hugging Face `tokenizers`: a BPE model with a ByteLevel pre-tokenizer
//                             (GPT-2's pattern) or one Split regex followed by ByteLevel (Llama 3's
//                             family); no normalizer
//   vocab.json + merges.txt   GPT-2's original pair (the pattern is GPT-2's)
//   NAME.tiktoken             tiktoken's base64 ranks; the pattern and special tokens are those of
//                             the encoding with that many ranks (r50k/gpt2, p50k, cl100k, o200k)
// Every error names the file and what would be accepted.
#pragma once

#include <string>

#include "data/bpe_tokenizer.h"

namespace aios {

BpeModel read_hf_tokenizer_json(const std::string& path);
BpeModel read_vocab_and_merges(const std::string& vocab_path, const std::string& merges_path);
BpeModel read_tiktoken_ranks(const std::string& path);

// The BPE tokenizer files in `directory` (tokenizer.json, else vocab.json + merges.txt, else its
// one .tiktoken file) as a model; nullopt when it holds none of them.
std::optional<BpeModel> read_bpe_directory(const std::string& directory);

}  // namespace aios
