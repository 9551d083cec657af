// An opened shard set: the manifest plus checks that every shard it lists is present, readable
// and of the recorded length, vocabulary and dtype. Checksums are verified on demand (they read
// every byte), by `aios inspect --verify` and by ShardDataset the first time it opens a shard.
#pragma once

#include <string>
#include <vector>

#include "data/manifest.h"
#include "data/shard_file.h"

namespace aios {

class ShardSet {
 public:
  // path: the shard set's directory or its manifest.json.
  static ShardSet open(const std::string& path);

  const Manifest& manifest() const { return manifest_; }
  const std::string& directory() const { return directory_; }
  std::string shard_path(const ShardRecord& shard) const;
  std::vector<ShardRecord> shards(const std::string& split) const;

  // Opens a shard, checks it against its record (length, dtype, vocabulary) and, when asked,
  // its checksum. Throws an Error naming the file on any mismatch.
  ShardFileReader open_shard(const ShardRecord& shard, bool verify_checksum) const;
  void verify_all_checksums() const;

 private:
  std::string directory_;
  Manifest manifest_;
};

}  // namespace aios
