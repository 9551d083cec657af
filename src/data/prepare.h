// `aios prepare`: text files (or llm.c token files) -> a shard set directory. The set is built
// under a temporary name and renamed into place only when complete, so an interrupted prepare
// leaves nothing half-written behind.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/manifest.h"

namespace aios {

struct PrepareOptions {
  std::vector<std::string> inputs;         // text files, directories, or llm.c .bin files
  std::string output;                      // shard set directory
  std::string tokenizer = "byte";          // "byte", a tokenizer file or directory (load_tokenizer)
  std::int64_t train_tokenizer_vocab = 0;  // > 0: train a SentencePiece BPE model of this size
  std::int64_t shard_tokens = 100'000'000;
  double val_fraction = 0.005;
  std::int64_t split_block_tokens = 1 << 20;  // upper bound; small corpora get smaller blocks
  std::string dtype = "auto";                 // auto | uint16 | uint32
  std::string documents = "file";             // file | line: what one document is in text input
  std::int64_t vocab_size = 0;                // llm.c import: 0 = from the file's magic
  std::int64_t end_of_text_id = -1;           // llm.c import: -1 = from the file's magic
  bool overwrite = false;
  bool binary_ok = false;  // tokenize files that do not look like text (their bytes) instead of refusing them
  int threads = 0;         // encoding threads; 0: every usable core
};

struct PrepareProgress {
  std::int64_t bytes_done = 0;
  std::int64_t bytes_total = 0;
  std::int64_t tokens = 0;
};

struct PrepareResult {
  Manifest manifest;
  std::string directory;
  std::int64_t input_bytes = 0;
  double seconds = 0;
};

// on_progress is called after each block of input (about every 4 MiB).
PrepareResult prepare_shards(const PrepareOptions& options,
                             const std::function<void(const PrepareProgress&)>& on_progress = {});

}  // namespace aios
