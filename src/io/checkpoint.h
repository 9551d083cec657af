// Training checkpoints: model, optimizer state, loss scale, step, data cursor and RNG states,
// written under temporary names and renamed into place; `latest` in the run directory names the
// newest complete checkpoint. A failed or interrupted save leaves the previous one intact.
//
// With a ZeRO-sharded optimizer every rank writes its own shard file
// (ckpt-N.optimizer-rank-R-of-W.pt) first; after a barrier rank 0 writes the main file (which
// names the world size) and then `latest`. So `latest` only ever names a checkpoint whose shard
// files are all complete. Resuming on another world size re-slices the shards (io/zero_reshard.h).
#pragma once

#include <torch/nn/module.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "distributed/comm.h"
#include "io/checkpoint_metadata.h"
#include "optim/loss_scaler.h"
#include "optim/optimizer.h"

namespace aios {

struct TrainProgress {
  std::int64_t step = 0;          // optimizer steps completed
  std::uint64_t data_cursor = 0;  // ShardDataset::cursor()
  std::int64_t tokens_seen = 0;
  // After a resume: what differs from the run that wrote the checkpoint (another dataset or
  // window), in words for the log; "" when nothing does.
  std::string data_change;
};

// `metadata` goes into the checkpoint: the model's shape (loading into another shape is refused
// with both descriptions), the tokenizer and its files, the dataset and window. Returns the path
// written.
std::string save_checkpoint(const std::string& run_directory, const torch::nn::Module& model,
                            const Optimizer& optimizer, const LossScaler& scaler, const TrainProgress& progress,
                            const CheckpointMetadata& metadata, Comm& comm, bool sharded_optimizer);

// Every file of the checkpoint whose main file is `main_path` (itself and its optimizer shards).
std::vector<std::string> checkpoint_files(const std::string& main_path);
// "FILE: what is wrong" for the first of those files that is missing or does not match the checksum
// written beside it (ckpt-….pt.crc32), or "" when all do. Files without a checksum pass.
std::string checkpoint_damage(const std::string& main_path);
// The newest checkpoint of run_directory whose files are all intact, or "".
std::string newest_intact_checkpoint(const std::string& run_directory);

// Checkpoint retention: removes the checkpoints of run_directory (aios's own ckpt-NNNNNNNN.pt
// files and their optimizer shards, nothing else) other than the newest `keep_last`, those whose
// step is a multiple of `keep_every` (0: none kept for that reason) and the one `latest` names.
// keep_last <= 0 keeps everything. Returns the names removed. Call on one rank, after a save.
std::vector<std::string> prune_checkpoints(const std::string& run_directory, std::int64_t keep_last,
                                           std::int64_t keep_every);

// `path` may be "latest" (resolved in run_directory). Restores model, optimizer, loss scale and
// RNG states. Refused, naming both: another model shape (`expected.model`), an optimizer of
// another kind (8-bit vs fp32), a dataset of another tokenizer.
TrainProgress load_checkpoint(const std::string& path, const std::string& run_directory, torch::nn::Module& model,
                              Optimizer& optimizer, LossScaler& scaler, const CheckpointMetadata& expected,
                              const torch::Device& device, Comm& comm, bool sharded_optimizer);

// A checkpoint opened to use its model (sample, eval, export), read on the CPU: its metadata and
// the model's archive (module.load(weights) fills a model built from metadata->model).
struct InferenceCheckpoint {
  std::string path;
  std::int64_t step = 0;
  std::optional<CheckpointMetadata> metadata;  // none in checkpoints written before aios recorded it
  torch::serialize::InputArchive weights;
};
// `path`: a checkpoint file, or a run directory (its `latest`).
InferenceCheckpoint open_checkpoint_for_inference(const std::string& path);

std::string resolve_checkpoint_path(const std::string& path, const std::string& run_directory);

}  // namespace aios
