// Cuts a corpus's token stream into shard files of two splits. The stream is divided into
// blocks of `split_block_tokens`; block b goes to the validation split when
// ceil((b+1)·f) > ceil(b·f), f = val_fraction, which spreads validation blocks evenly through
// the corpus (block 0 is always one, so any non-empty corpus with f > 0 has a validation split).
// Each split buffers at most one shard in memory: memory is bounded by --shard-tokens, not by
// the corpus.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "data/manifest.h"
#include "data/shard_file.h"

namespace aios {

struct ShardSetWriterOptions {
  std::string directory;
  std::int64_t shard_tokens = 0;
  double val_fraction = 0;
  std::int64_t split_block_tokens = 0;
  TokenDtype dtype = TokenDtype::kUint16;
  ShardAttributes attributes;  // `split` is filled in per shard
};

class ShardSetWriter {
 public:
  explicit ShardSetWriter(ShardSetWriterOptions options);

  // The next appended token starts a new document.
  void begin_document() { document_pending_ = true; }
  // Where appended tokens go: by blocks (the default), or all to one split ("train" or "val"),
  // as for llm.c's own _train/_val files. Tokens sent to one split do not move the block count.
  void send_all_to(const std::string& split) { forced_split_ = split; }
  void append(std::span<const std::uint32_t> tokens);
  // Writes the partly filled shards and returns the records of every shard written.
  std::vector<ShardRecord> finish();

  std::int64_t tokens_appended() const { return appended_; }
  bool is_validation_block(std::int64_t block) const;

 private:
  struct SplitBuffer {
    std::string split;
    std::vector<std::uint32_t> tokens;
    std::vector<std::uint64_t> doc_offsets;
    int next_index = 0;
  };
  void flush(SplitBuffer& buffer);

  ShardSetWriterOptions options_;
  SplitBuffer train_{"train", {}, {}, 0};
  SplitBuffer val_{"val", {}, {}, 0};
  std::vector<ShardRecord> records_;
  std::int64_t position_ = 0;  // tokens split by blocks
  std::int64_t appended_ = 0;  // all tokens
  std::string forced_split_;   // "" (by blocks), "train" or "val"
  bool document_pending_ = false;
};

}  // namespace aios
