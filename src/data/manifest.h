// manifest.json: the table of contents of a shard set. Written last by `aios prepare`, so its
// presence means the set is complete; every reader checks shards against it.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "data/shard_file.h"

namespace aios {

inline constexpr int kManifestFormatVersion = 1;
inline constexpr const char* kManifestFileName = "manifest.json";

struct ShardRecord {
  std::string file;   // relative to the shard set's directory
  std::string split;  // "train" or "val"
  std::int64_t tokens = 0;
  std::int64_t documents = 0;  // documents that start in this shard
  std::string crc32;
};

struct TokenizerRecord {
  std::string kind;  // "byte", "bpe", "sentencepiece", "llmc-import"
  std::string hash;
  std::int64_t vocab_size = 0;
  std::optional<std::uint32_t> end_of_text_id;
  std::vector<std::string> files;  // the tokenizer's files copied into the set, entry point first; none for "byte"
};

struct Manifest {
  std::string name;
  std::string created_by;
  TokenizerRecord tokenizer;
  TokenDtype dtype = TokenDtype::kUint16;
  std::int64_t shard_tokens = 0;
  double val_fraction = 0;
  std::int64_t split_block_tokens = 0;
  std::vector<std::string> sources;
  std::vector<ShardRecord> shards;

  std::int64_t tokens(const std::string& split) const;
  std::int64_t documents(const std::string& split) const;
  std::int64_t shard_count(const std::string& split) const;
};

nlohmann::json manifest_to_json(const Manifest& manifest);
// `where` names the file in error messages.
Manifest manifest_from_json(const nlohmann::json& json, const std::string& where);

Manifest read_manifest(const std::string& path);
void write_manifest(const std::string& path, const Manifest& manifest);

}  // namespace aios
