#include "train/trainer.h"

#include <cstdio>

#include "base/error.h"
#include "data/shard_dataset.h"

namespace aios {

// The optimization loop is not built yet (issue 3). Until then `aios train` checks its options
// and its data fully, reports what it would train on, and stops with an error, so that no one
// mistakes it for a training run.
void run_training(const TrainOptions& options) {
  ShardDatasetOptions data;
  data.seq_len = options.window_size;
  data.seed = options.seed;
  data.verify_checksums = options.verify_shards;
  ShardDataset train(ShardSet::open(options.dataset_file), data);
  std::printf("train: %s, %lld windows of %lld tokens per epoch\n", options.dataset_file.c_str(),
              static_cast<long long>(train.windows_per_epoch()), static_cast<long long>(train.window_tokens()));
  throw Error("aios train", "the training loop is not built yet in this version",
              "`aios prepare` and `aios inspect` for now");
}

}  // namespace aios
