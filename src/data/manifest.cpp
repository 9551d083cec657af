#include "data/manifest.h"

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/files.h"

namespace aios {

using nlohmann::json;

namespace {
template <typename F>
std::int64_t sum_over(const std::vector<ShardRecord>& shards, const std::string& split, F field) {
  std::int64_t total = 0;
  for (const auto& shard : shards) {
    if (shard.split == split) total += field(shard);
  }
  return total;
}
}  // namespace

std::int64_t Manifest::tokens(const std::string& split) const {
  return sum_over(shards, split, [](const ShardRecord& s) { return s.tokens; });
}
std::int64_t Manifest::documents(const std::string& split) const {
  return sum_over(shards, split, [](const ShardRecord& s) { return s.documents; });
}
std::int64_t Manifest::shard_count(const std::string& split) const {
  return sum_over(shards, split, [](const ShardRecord&) { return std::int64_t{1}; });
}

json manifest_to_json(const Manifest& m) {
  json shards = json::array();
  for (const auto& s : m.shards) {
    shards.push_back(
        {{"file", s.file}, {"split", s.split}, {"tokens", s.tokens}, {"documents", s.documents}, {"crc32", s.crc32}});
  }
  json splits = json::object();
  for (const char* split : {"train", "val"}) {
    splits[split] = {{"tokens", m.tokens(split)}, {"documents", m.documents(split)}, {"shards", m.shard_count(split)}};
  }
  json tokenizer = {{"kind", m.tokenizer.kind},
                    {"hash", m.tokenizer.hash},
                    {"vocab_size", m.tokenizer.vocab_size},
                    {"end_of_text_id", m.tokenizer.end_of_text_id ? json(*m.tokenizer.end_of_text_id) : json(nullptr)},
                    {"model_file", m.tokenizer.files.empty() ? std::string() : m.tokenizer.files.front()},
                    {"files", m.tokenizer.files}};
  return {{"format", "aios-shards"},
          {"format_version", kManifestFormatVersion},
          {"name", m.name},
          {"created_by", m.created_by},
          {"tokenizer", tokenizer},
          {"dtype", to_string(m.dtype)},
          {"shard_tokens", m.shard_tokens},
          {"val_fraction", m.val_fraction},
          {"split_block_tokens", m.split_block_tokens},
          {"sources", m.sources},
          {"splits", splits},
          {"shards", shards}};
}

// One field of the manifest as type T, or an error naming the field, the type found and the type
// expected (nlohmann's own message names neither field nor file).
template <typename T>
T field(const json& object, const std::string& key, const std::string& name, const std::string& where) {
  if (!object.is_object() || !object.contains(key)) {
    throw Error(where, "field \"" + name + "\" is missing", "a manifest written by aios prepare");
  }
  const json& value = object.at(key);
  try {
    return value.get<T>();
  } catch (const json::exception&) {
    std::string expected = "a string";
    if constexpr (std::is_floating_point_v<T>) expected = "a number";
    if constexpr (std::is_integral_v<T>) expected = "an integer";
    if constexpr (std::is_same_v<T, std::vector<std::string>>) expected = "an array of strings";
    throw Error(where, "field \"" + name + "\" is " + value.type_name() + " " + value.dump().substr(0, 40), expected);
  }
}

Manifest manifest_from_json(const json& j, const std::string& where) {
  try {
    if (j.value("format", "") != "aios-shards") {
      throw Error(where, "is not an aios shard manifest (format is not \"aios-shards\")");
    }
    const int version = field<int>(j, "format_version", "format_version", where);
    if (version != kManifestFormatVersion) {
      throw Error(where, "manifest format_version " + std::to_string(version) + " is not supported",
                  "format_version " + std::to_string(kManifestFormatVersion));
    }
    Manifest m;
    m.name = field<std::string>(j, "name", "name", where);
    m.created_by = j.value("created_by", "");
    const json t = field<json>(j, "tokenizer", "tokenizer", where);
    m.tokenizer.kind = field<std::string>(t, "kind", "tokenizer.kind", where);
    m.tokenizer.hash = field<std::string>(t, "hash", "tokenizer.hash", where);
    m.tokenizer.vocab_size = field<std::int64_t>(t, "vocab_size", "tokenizer.vocab_size", where);
    if (!field<json>(t, "end_of_text_id", "tokenizer.end_of_text_id", where).is_null())
      m.tokenizer.end_of_text_id = field<std::uint32_t>(t, "end_of_text_id", "tokenizer.end_of_text_id", where);
    m.tokenizer.files = t.value("files", std::vector<std::string>{});
    // Sets written before "files" name only their entry file.
    if (const std::string entry = t.value("model_file", ""); m.tokenizer.files.empty() && !entry.empty()) {
      m.tokenizer.files = {entry};
    }
    m.dtype = token_dtype_from_string(field<std::string>(j, "dtype", "dtype", where), where + ": dtype");
    m.shard_tokens = field<std::int64_t>(j, "shard_tokens", "shard_tokens", where);
    m.val_fraction = field<double>(j, "val_fraction", "val_fraction", where);
    m.split_block_tokens = field<std::int64_t>(j, "split_block_tokens", "split_block_tokens", where);
    m.sources = field<std::vector<std::string>>(j, "sources", "sources", where);
    const json shards = field<json>(j, "shards", "shards", where);
    for (std::size_t index = 0; index < shards.size(); ++index) {
      const json& s = shards[index];
      ShardRecord r;
      r.file = field<std::string>(s, "file", "shards[" + std::to_string(index) + "].file", where);
      r.split = field<std::string>(s, "split", "shards[" + std::to_string(index) + "].split", where);
      r.tokens = field<std::int64_t>(s, "tokens", "shards[" + std::to_string(index) + "].tokens", where);
      r.documents = field<std::int64_t>(s, "documents", "shards[" + std::to_string(index) + "].documents", where);
      r.crc32 = field<std::string>(s, "crc32", "shards[" + std::to_string(index) + "].crc32", where);
      if (r.split != "train" && r.split != "val") {
        throw Error(where, "shard " + r.file + " has split '" + r.split + "'", "train or val");
      }
      m.shards.push_back(std::move(r));
    }
    return m;
  } catch (const json::exception& e) {
    throw Error(where, std::string("malformed manifest: ") + e.what());
  }
}

Manifest read_manifest(const std::string& path) {
  const std::string text = read_text_file(path);
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    throw Error(path, std::string("is not valid JSON: ") + e.what());
  }
  return manifest_from_json(j, path);
}

void write_manifest(const std::string& path, const Manifest& manifest) {
  write_file_atomically(path, manifest_to_json(manifest).dump(2) + "\n");
}

}  // namespace aios
