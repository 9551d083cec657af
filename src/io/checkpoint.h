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
#include <string>
#include <vector>

#include "distributed/comm.h"
#include "optim/loss_scaler.h"
#include "optim/optimizer.h"

namespace aios {

struct TrainProgress {
  std::int64_t step = 0;          // optimizer steps completed
  std::uint64_t data_cursor = 0;  // ShardDataset::cursor()
  std::int64_t tokens_seen = 0;
};

// `model_signature` identifies the model shape (GptConfig::describe()); loading into another
// shape is refused with both descriptions. Returns the path written.
std::string save_checkpoint(const std::string& run_directory, const torch::nn::Module& model,
                            const Optimizer& optimizer, const LossScaler& scaler, const TrainProgress& progress,
                            const std::string& model_signature, Comm& comm, bool sharded_optimizer);

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
// RNG states. An optimizer of another kind (8-bit vs fp32) is refused with both names.
TrainProgress load_checkpoint(const std::string& path, const std::string& run_directory, torch::nn::Module& model,
                              Optimizer& optimizer, LossScaler& scaler, const std::string& model_signature,
                              const torch::Device& device, Comm& comm, bool sharded_optimizer);

std::string resolve_checkpoint_path(const std::string& path, const std::string& run_directory);

}  // namespace aios
