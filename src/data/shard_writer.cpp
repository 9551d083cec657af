#include "data/shard_writer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "base/error.h"
#include "base/files.h"

namespace aios {

ShardSetWriter::ShardSetWriter(ShardSetWriterOptions options) : options_(std::move(options)) {
  if (options_.shard_tokens < 1 || options_.split_block_tokens < 1) {
    throw Error("ShardSetWriter", "shard_tokens and split_block_tokens must be positive");
  }
}

bool ShardSetWriter::is_validation_block(std::int64_t block) const {
  const double f = options_.val_fraction;
  if (f <= 0) return false;
  return std::ceil(static_cast<double>(block + 1) * f) > std::ceil(static_cast<double>(block) * f);
}

void ShardSetWriter::append(std::span<const std::uint32_t> tokens) {
  while (!tokens.empty()) {
    const std::int64_t block = position_ / options_.split_block_tokens;
    const bool by_blocks = forced_split_.empty();
    const std::int64_t left_in_block =
        by_blocks ? (block + 1) * options_.split_block_tokens - position_ : static_cast<std::int64_t>(tokens.size());
    SplitBuffer& target =
        by_blocks ? (is_validation_block(block) ? val_ : train_) : (forced_split_ == "val" ? val_ : train_);
    const std::int64_t room = options_.shard_tokens - static_cast<std::int64_t>(target.tokens.size());
    const auto take =
        static_cast<std::size_t>(std::min({left_in_block, room, static_cast<std::int64_t>(tokens.size())}));
    if (document_pending_) {
      target.doc_offsets.push_back(target.tokens.size());
      document_pending_ = false;
    }
    target.tokens.insert(target.tokens.end(), tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(take));
    tokens = tokens.subspan(take);
    if (by_blocks) position_ += static_cast<std::int64_t>(take);
    appended_ += static_cast<std::int64_t>(take);
    if (static_cast<std::int64_t>(target.tokens.size()) == options_.shard_tokens) flush(target);
  }
}

void ShardSetWriter::flush(SplitBuffer& buffer) {
  if (buffer.tokens.empty()) return;
  char name[64];
  std::snprintf(name, sizeof(name), "%s-%06d.h5", buffer.split.c_str(), buffer.next_index++);
  ShardAttributes attributes = options_.attributes;
  attributes.split = buffer.split;
  const auto summary = write_shard_file(join_path(options_.directory, name), buffer.tokens, buffer.doc_offsets,
                                        options_.dtype, attributes);
  records_.push_back({name, buffer.split, summary.tokens, summary.documents, summary.crc32});
  buffer.tokens.clear();
  buffer.doc_offsets.clear();
}

std::vector<ShardRecord> ShardSetWriter::finish() {
  flush(train_);
  flush(val_);
  return records_;
}

}  // namespace aios
