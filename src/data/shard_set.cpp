#include "data/shard_set.h"

#include "base/error.h"
#include "base/files.h"

namespace aios {

ShardSet ShardSet::open(const std::string& path) {
  ShardSet set;
  if (is_directory(path)) {
    set.directory_ = path;
  } else if (file_name(path) == kManifestFileName && is_regular_file(path)) {
    set.directory_ = parent_path(path);
  } else {
    throw Error(path, "does not exist or is not a shard set",
                "a directory written by `aios prepare` (holding manifest.json)");
  }
  const std::string manifest_path = join_path(set.directory_, kManifestFileName);
  if (!path_exists(manifest_path)) {
    throw Error(set.directory_, "has no manifest.json", "a directory written by `aios prepare`");
  }
  set.manifest_ = read_manifest(manifest_path);
  for (const auto& shard : set.manifest_.shards) set.open_shard(shard, /*verify_checksum=*/false);
  return set;
}

std::string ShardSet::shard_path(const ShardRecord& shard) const { return join_path(directory_, shard.file); }

std::vector<ShardRecord> ShardSet::shards(const std::string& split) const {
  std::vector<ShardRecord> selected;
  for (const auto& shard : manifest_.shards) {
    if (shard.split == split) selected.push_back(shard);
  }
  return selected;
}

ShardFileReader ShardSet::open_shard(const ShardRecord& shard, bool verify_checksum) const {
  const std::string path = shard_path(shard);
  if (!path_exists(path)) {
    throw Error(path, "is listed in manifest.json but missing", "the complete shard set");
  }
  ShardFileReader reader(path);
  if (reader.size() != shard.tokens) {
    throw Error(
        path,
        "holds " + std::to_string(reader.size()) + " tokens but manifest.json says " + std::to_string(shard.tokens),
        "the shard written with this manifest; run `aios prepare` again");
  }
  if (reader.dtype() != manifest_.dtype) {
    throw Error(path, "stores " + to_string(reader.dtype()) + " but manifest.json says " + to_string(manifest_.dtype));
  }
  const auto& a = reader.attributes();
  if (a.vocab_size != manifest_.tokenizer.vocab_size || a.tokenizer_hash != manifest_.tokenizer.hash) {
    throw Error(path, "was written with tokenizer " + a.tokenizer_kind + ":" + a.tokenizer_hash + " (vocab " +
                          std::to_string(a.vocab_size) + ") but manifest.json names " + manifest_.tokenizer.kind + ":" +
                          manifest_.tokenizer.hash + " (vocab " + std::to_string(manifest_.tokenizer.vocab_size) + ")");
  }
  if (verify_checksum) {
    const std::string crc = reader.compute_crc32();
    if (crc != shard.crc32) {
      throw Error(path,
                  "checksum " + crc + " does not match manifest.json's " + shard.crc32 + " (file changed or damaged)",
                  "run `aios prepare` again");
    }
  }
  return reader;
}

void ShardSet::verify_all_checksums() const {
  for (const auto& shard : manifest_.shards) open_shard(shard, /*verify_checksum=*/true);
}

}  // namespace aios
