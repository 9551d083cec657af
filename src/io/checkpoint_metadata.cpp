#include "io/checkpoint_metadata.h"

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/files.h"
#include "data/shard_set.h"

namespace aios {
namespace {

nlohmann::json config_to_json(const GptConfig& c) {
  return {{"n_layer", c.n_layer},
          {"n_head", c.n_head},
          {"n_embd", c.n_embd},
          {"vocab_size", c.vocab_size},
          {"max_positions", c.max_positions},
          {"position", to_string(c.position)},
          {"rope_theta", c.rope_theta},
          {"dropout", c.dropout},
          {"layer_norm_eps", c.layer_norm_eps}};
}

GptConfig config_from_json(const nlohmann::json& j, const std::string& where) {
  GptConfig c;
  c.n_layer = j.at("n_layer").get<std::int64_t>();
  c.n_head = j.at("n_head").get<std::int64_t>();
  c.n_embd = j.at("n_embd").get<std::int64_t>();
  c.vocab_size = j.at("vocab_size").get<std::int64_t>();
  c.max_positions = j.at("max_positions").get<std::int64_t>();
  const auto position = enum_from_string<PositionEncoding>(j.at("position").get<std::string>());
  if (!position) throw Error(where, "names an unknown position encoding " + j.at("position").dump());
  c.position = *position;
  c.rope_theta = j.at("rope_theta").get<double>();
  c.dropout = j.at("dropout").get<double>();
  c.layer_norm_eps = j.at("layer_norm_eps").get<double>();
  return c;
}

}  // namespace

CheckpointMetadata metadata_of_run(const GptConfig& model, const ShardSet& shards, std::int64_t window) {
  CheckpointMetadata m;
  m.model = model;
  m.tokenizer = shards.manifest().tokenizer;
  for (const auto& name : m.tokenizer.files) {
    m.tokenizer_files.push_back({name, read_text_file(join_path(shards.directory(), name))});
  }
  m.dataset = shards.directory();
  m.window = window;
  return m;
}

void write_metadata(torch::serialize::OutputArchive& archive, const CheckpointMetadata& m) {
  const nlohmann::json tokenizer = {
      {"kind", m.tokenizer.kind},
      {"hash", m.tokenizer.hash},
      {"vocab_size", m.tokenizer.vocab_size},
      {"end_of_text_id", m.tokenizer.end_of_text_id ? nlohmann::json(*m.tokenizer.end_of_text_id) : nullptr},
      {"files", m.tokenizer.files}};
  const nlohmann::json json = {
      {"model", config_to_json(m.model)}, {"tokenizer", tokenizer}, {"dataset", m.dataset}, {"window", m.window}};
  archive.write("metadata", c10::IValue(json.dump()));
  torch::serialize::OutputArchive files;
  for (const auto& file : m.tokenizer_files) files.write(file.name, c10::IValue(file.bytes));
  archive.write("tokenizer_files", files);
}

std::optional<CheckpointMetadata> read_metadata(torch::serialize::InputArchive& archive, const std::string& where) {
  c10::IValue value;
  if (!archive.try_read("metadata", value)) return std::nullopt;
  CheckpointMetadata m;
  try {
    const auto json = nlohmann::json::parse(value.toStringRef());
    m.model = config_from_json(json.at("model"), where);
    const auto& t = json.at("tokenizer");
    m.tokenizer.kind = t.at("kind").get<std::string>();
    m.tokenizer.hash = t.at("hash").get<std::string>();
    m.tokenizer.vocab_size = t.at("vocab_size").get<std::int64_t>();
    if (!t.at("end_of_text_id").is_null()) m.tokenizer.end_of_text_id = t.at("end_of_text_id").get<std::uint32_t>();
    m.tokenizer.files = t.at("files").get<std::vector<std::string>>();
    m.dataset = json.at("dataset").get<std::string>();
    m.window = json.at("window").get<std::int64_t>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(where, std::string("has unreadable metadata (") + e.what() + ")", "a checkpoint written by aios");
  }
  torch::serialize::InputArchive files;
  if (archive.try_read("tokenizer_files", files)) {
    for (const auto& name : m.tokenizer.files) {
      if (!files.try_read(name, value)) throw Error(where, "lacks the tokenizer file " + name + " it names");
      m.tokenizer_files.push_back({name, value.toStringRef()});
    }
  }
  return m;
}

std::vector<std::string> write_tokenizer_files(const CheckpointMetadata& metadata, const std::string& directory) {
  make_directories(directory);
  std::vector<std::string> paths;
  for (const auto& file : metadata.tokenizer_files) {
    paths.push_back(join_path(directory, file.name));
    write_file_atomically(paths.back(), file.bytes);
  }
  return paths;
}

}  // namespace aios
