#include "infer/model_source.h"

#include <unistd.h>

#include "base/error.h"
#include "base/files.h"
#include "io/checkpoint.h"
#include "model/hf_gpt2.h"

namespace aios {
namespace {

constexpr const char* kSources =
    "an aios checkpoint (ckpt-NNNNNNNN.pt), a run directory of aios train, or a Hugging Face GPT-2 directory "
    "(config.json + model.safetensors)";

std::unique_ptr<Tokenizer> tokenizer_of_checkpoint(const CheckpointMetadata& metadata) {
  if (metadata.tokenizer.kind == "byte") return make_byte_tokenizer();
  if (metadata.tokenizer_files.empty()) return nullptr;
  // The loaders read files: the checkpoint's copies go to a private directory for the moment.
  const std::string directory =
      join_path(temp_directory(), "aios-tokenizer-" + std::to_string(::getpid()) + "-" + metadata.tokenizer.hash);
  write_tokenizer_files(metadata, directory);
  try {
    auto tokenizer = load_tokenizer(directory, "the checkpoint's tokenizer");
    remove_tree(directory);
    return tokenizer;
  } catch (...) {
    remove_tree(directory);
    throw;
  }
}

}  // namespace

std::vector<CheckpointMetadata::File> tokenizer_file_bytes(const Tokenizer& tokenizer) {
  std::vector<CheckpointMetadata::File> files;
  for (const auto& file : tokenizer.files()) files.push_back({file.name, read_text_file(file.path)});
  return files;
}

LoadedModel load_model(const std::string& source, const std::string& tokenizer, const torch::Device& device) {
  LoadedModel loaded;
  const bool hf = is_directory(source) && is_regular_file(join_path(source, "config.json")) &&
                  is_regular_file(join_path(source, "model.safetensors"));
  if (hf) {
    loaded.metadata.model = read_hf_gpt2_config(source);
    loaded.model = Gpt(loaded.metadata.model);
    load_hf_gpt2_weights(source, loaded.model);
    const bool has_tokenizer =
        is_regular_file(join_path(source, "tokenizer.json")) || is_regular_file(join_path(source, "vocab.json"));
    if (has_tokenizer && tokenizer.empty()) loaded.tokenizer = load_tokenizer(source, source);
    loaded.description = "Hugging Face GPT-2 in " + source;
  } else if (is_regular_file(source) || (is_directory(source) && is_regular_file(join_path(source, "latest")))) {
    InferenceCheckpoint checkpoint = open_checkpoint_for_inference(source);
    if (!checkpoint.metadata) {
      throw Error(checkpoint.path, "was written by an aios that did not record the model's shape in checkpoints",
                  "a checkpoint written by this version (train on with --resume, and use its next checkpoint)");
    }
    loaded.metadata = *checkpoint.metadata;
    loaded.metadata.model.dropout = 0;
    loaded.model = Gpt(loaded.metadata.model);
    loaded.model->load(checkpoint.weights);
    if (tokenizer.empty()) loaded.tokenizer = tokenizer_of_checkpoint(loaded.metadata);
    loaded.description = checkpoint.path + " (step " + std::to_string(checkpoint.step) + ")";
  } else {
    throw Error(source, path_exists(source) ? "is not a model aios can load" : "does not exist", kSources);
  }
  if (!tokenizer.empty()) loaded.tokenizer = load_tokenizer(tokenizer);
  if (loaded.tokenizer) {
    if (loaded.tokenizer->vocab_size() > loaded.metadata.model.vocab_size) {
      throw Error(tokenizer.empty() ? source : "--tokenizer",
                  "the tokenizer's vocabulary of " + std::to_string(loaded.tokenizer->vocab_size()) +
                      " ids exceeds the model's " + std::to_string(loaded.metadata.model.vocab_size),
                  "the tokenizer the model was trained with");
    }
    // A Hugging Face directory records no tokenizer, and --tokenizer replaces the recorded one (an
    // export then carries the given tokenizer's files).
    if (loaded.metadata.tokenizer.kind.empty() || !tokenizer.empty()) {
      loaded.metadata.tokenizer.kind = loaded.tokenizer->kind();
      loaded.metadata.tokenizer.hash = loaded.tokenizer->hash();
      loaded.metadata.tokenizer.vocab_size = loaded.tokenizer->vocab_size();
      loaded.metadata.tokenizer.end_of_text_id = loaded.tokenizer->end_of_text_id();
      loaded.metadata.tokenizer_files = tokenizer_file_bytes(*loaded.tokenizer);
      loaded.metadata.tokenizer.files.clear();
      for (const auto& file : loaded.metadata.tokenizer_files) loaded.metadata.tokenizer.files.push_back(file.name);
    }
  }
  loaded.model->to(device);
  loaded.model->eval();
  return loaded;
}

}  // namespace aios
