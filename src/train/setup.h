// Everything a training run is made of, built from its options before the first step: the rank's
// place in the job and its device, the data, the model with its memory techniques applied, the
// gradient sync, the optimizer over what that sync hands it, the loss scaler and the schedule,
// all restored from a checkpoint when the run resumes. The step (train/train_step.h) and the loop
// (train/trainer.h) only use what is built here.
#pragma once

#include <torch/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/files.h"
#include "data/shard_dataset.h"
#include "data/tokenizer.h"
#include "distributed/comm.h"
#include "distributed/gradient_sync.h"
#include "distributed/hang_watchdog.h"
#include "infer/evaluate.h"
#include "io/checkpoint.h"
#include "io/checkpoint_metadata.h"
#include "memory/attention_backend.h"
#include "memory/chunked_training.h"
#include "memory/mixed_precision.h"
#include "model/gpt.h"
#include "optim/loss_scaler.h"
#include "optim/lr_schedule.h"
#include "optim/optimizer.h"
#include "train/fault_injection.h"
#include "train/step_graph.h"
#include "train/train_options.h"

namespace aios {

// The CUDA device index a rank drives: `requested` (--device cuda:N) when given; else the one GPU a
// rank sees (per-task binding), or the GPU of its local rank when it sees its node's GPUs. Throws
// naming --device when the GPUs seen cannot give this rank one.
int cuda_device_for_rank(std::optional<int> requested, int local_rank, int visible);

// The model's shape: a Hugging Face config (--init-from) or a preset with overrides, its vocabulary
// --vocab-size or the data's; checked against the data and the window.
GptConfig model_config(const TrainOptions& options, const Manifest& data);

struct TrainingSetup {
  // Validates the options, then builds every component (collective under mpirun: each rank
  // constructs one, in step with its peers).
  explicit TrainingSetup(const TrainOptions& options);
  TrainingSetup(const TrainingSetup&) = delete;
  TrainingSetup& operator=(const TrainingSetup&) = delete;

  const TrainOptions options;

  // Where this rank runs
  std::unique_ptr<Comm> comm;
  torch::Device device{torch::kCPU};
  bool lead = true;                             // rank 0: logs, prints and writes the shared checkpoint file
  at::ScalarType parameter_dtype = at::kFloat;  // parameters, gradients and optimizer state
  MixedPrecision precision;                     // what autocast runs matmuls and attention in
  // The type matmuls and attention compute in: the autocast type, or the parameters' without AMP.
  at::ScalarType compute_dtype() const { return precision.enabled ? precision.dtype : parameter_dtype; }

  // Data
  std::optional<ShardSet> shards;
  std::optional<ShardDataset> train_data;
  std::optional<ShardDataset> val_data;  // none: the val split holds no whole window, or no evaluation
  // Samples and multiple-choice evaluation read and write text with the dataset's tokenizer.
  std::unique_ptr<Tokenizer> tokenizer;             // null without --sample-every and --eval-hellaswag
  std::vector<std::uint32_t> sample_prompt;         // --sample-prompt's ids
  std::vector<MultipleChoiceItem> hellaswag_items;  // --eval-hellaswag

  // Model and memory techniques
  GptConfig config;
  CheckpointMetadata checkpoint_metadata;  // written into every checkpoint, checked on resume
  Gpt model{nullptr};
  AttentionChoice attention;
  std::optional<ChunkedTraining> chunking;  // --chunked-training; its chunk size is the step shape's
  std::string chunk_attention;              // with chunking: the kernel of chunks after the first

  // Optimization
  std::vector<torch::Tensor> parameters;  // the model's, in forward order
  std::unique_ptr<GradientSync> gradient_sync;
  std::unique_ptr<Optimizer> optimizer;
  std::optional<LossScaler> scaler;
  LrSchedule schedule;

  // Where the run starts: step 0, or the resumed checkpoint's step and data cursor
  TrainProgress progress;
  bool resumed = false;

  // Failure handling
  std::optional<FileLock> out_dir_lock;  // rank 0: one run at a time writes into --out-dir
  FaultInjector faults;
  std::optional<HangWatchdog> watchdog;  // a stuck peer would leave this rank in a collective for ever

  // Speed: the step as a CUDA graph (--cuda-graphs), built last so that it ends first: its stream
  // is current from the end of set-up to the end of the run.
  std::unique_ptr<StepGraph> step_graph;  // null when off or unavailable
  std::string step_graph_note;            // why there is none ("" when there is one)
};

}  // namespace aios
