// A trained model to use (sample, eval, export): from an aios checkpoint, a run directory (its
// `latest` checkpoint) or a Hugging Face GPT-2 directory, with its tokenizer when one is at hand.
#pragma once

#include <torch/types.h>

#include <memory>
#include <string>

#include "data/tokenizer.h"
#include "io/checkpoint_metadata.h"
#include "model/gpt.h"

namespace aios {

struct LoadedModel {
  Gpt model{nullptr};                    // in eval mode, on the requested device
  std::unique_ptr<Tokenizer> tokenizer;  // null when the source has none and none was given
  CheckpointMetadata metadata;           // the model's shape; the tokenizer's record and files
  std::string description;               // "runs/a/ckpt-00000100.pt (step 100)", "Hugging Face GPT-2 in DIR"
};

// `tokenizer` overrides the source's own ("" keeps it); its vocabulary must fit the model's.
// Errors name the source's path, or --tokenizer.
LoadedModel load_model(const std::string& source, const std::string& tokenizer, const torch::Device& device);

// A tokenizer's files, read (for a checkpoint's metadata or an export).
std::vector<CheckpointMetadata::File> tokenizer_file_bytes(const Tokenizer& tokenizer);

}  // namespace aios
