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
                    {"model_file", m.tokenizer.model_file}};
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

Manifest manifest_from_json(const json& j, const std::string& where) {
  try {
    if (j.value("format", "") != "aios-shards") {
      throw Error(where, "is not an aios shard manifest (format is not \"aios-shards\")");
    }
    const int version = j.at("format_version").get<int>();
    if (version != kManifestFormatVersion) {
      throw Error(where, "manifest format_version " + std::to_string(version) + " is not supported",
                  "format_version " + std::to_string(kManifestFormatVersion));
    }
    Manifest m;
    m.name = j.at("name").get<std::string>();
    m.created_by = j.value("created_by", "");
    const auto& t = j.at("tokenizer");
    m.tokenizer.kind = t.at("kind").get<std::string>();
    m.tokenizer.hash = t.at("hash").get<std::string>();
    m.tokenizer.vocab_size = t.at("vocab_size").get<std::int64_t>();
    if (!t.at("end_of_text_id").is_null()) m.tokenizer.end_of_text_id = t.at("end_of_text_id").get<std::uint32_t>();
    m.tokenizer.model_file = t.value("model_file", "");
    m.dtype = token_dtype_from_string(j.at("dtype").get<std::string>(), where + ": dtype");
    m.shard_tokens = j.at("shard_tokens").get<std::int64_t>();
    m.val_fraction = j.at("val_fraction").get<double>();
    m.split_block_tokens = j.at("split_block_tokens").get<std::int64_t>();
    m.sources = j.at("sources").get<std::vector<std::string>>();
    for (const auto& s : j.at("shards")) {
      ShardRecord r;
      r.file = s.at("file").get<std::string>();
      r.split = s.at("split").get<std::string>();
      r.tokens = s.at("tokens").get<std::int64_t>();
      r.documents = s.at("documents").get<std::int64_t>();
      r.crc32 = s.at("crc32").get<std::string>();
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
