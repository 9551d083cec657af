// What a checkpoint says about itself besides its tensors: the model's shape and the data it was
// trained on (the tokenizer's identity and its files, the dataset, the window). With it a
// checkpoint alone is enough to sample, evaluate or export, and a resume onto a dataset of
// another tokenizer is refused.
#pragma once

#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/manifest.h"
#include "model/gpt_config.h"

namespace aios {

class ShardSet;

struct CheckpointMetadata {
  GptConfig model;
  TokenizerRecord tokenizer;  // kind "" when unknown
  struct File {
    std::string name, bytes;
  };
  std::vector<File> tokenizer_files;  // the tokenizer's files, as prepare copied them beside the shards
  std::string dataset;                // the shard set's directory, as given to train
  std::int64_t window = 0;
};

// The metadata of a run over `shards` (reads the tokenizer files there).
CheckpointMetadata metadata_of_run(const GptConfig& model, const ShardSet& shards, std::int64_t window);

void write_metadata(torch::serialize::OutputArchive& archive, const CheckpointMetadata& metadata);
// nullopt for a checkpoint written before aios recorded it. `where` names the file in errors.
std::optional<CheckpointMetadata> read_metadata(torch::serialize::InputArchive& archive, const std::string& where);

// Writes the tokenizer files into `directory`; returns their paths (entry point first).
std::vector<std::string> write_tokenizer_files(const CheckpointMetadata& metadata, const std::string& directory);

}  // namespace aios
