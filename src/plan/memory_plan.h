// Peak GPU memory of a training run, predicted item by item from the model's shape and the run's
// options, without a GPU: what `aios plan` prints and `aios train` announces at its start.
//
// The prediction follows the tensors the step holds (docs/memory-plan.md): the persistent ones
// (weights, gradients, optimizer state) and, at each moment a peak can occur, the activations
// saved for the backward, the classifier's logits and gradients, and the recomputation of a
// checkpointed block. The peak is the largest of those moments.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/gpt_config.h"
#include "train/train_options.h"

namespace aios {

struct MemoryItem {
  std::string name;  // "weights", "activations saved for the backward", ...
  double bytes = 0;
  std::string detail;  // how it is counted: "124.4M parameters x 4 bytes"
};

// One moment of the step at which memory can peak, with what is held then.
struct MemoryMoment {
  std::string name;
  std::vector<MemoryItem> items;
  double bytes() const;
};

struct MemoryPlan {
  std::vector<MemoryMoment> moments;
  std::size_t peak_moment = 0;
  double peak_bytes = 0;      // bytes in tensors at the peak: PyTorch's peak allocated memory
  double reserved_bytes = 0;  // with the caching allocator's free blocks: what the GPU must hold
  std::string attention;      // the attention kernel assumed (flash/efficient keep O(window) per head)
  std::int64_t micro_batch = 0;
  std::int64_t accumulation = 1;
};

// Where the run trains: memory is planned per rank.
struct PlanTarget {
  bool cuda = true;
  std::int64_t ranks = 1;
};

MemoryPlan plan_memory(const GptConfig& config, const TrainOptions& options, const PlanTarget& target);

// --fit: the options that fit `budget_bytes` of GPU memory (reserved memory plus the CUDA
// context), cheapest first: the largest micro-batch with the flags as given, and the first set of
// techniques in order of their speed cost that trains the asked micro-batch (or, when none does,
// the largest micro-batch with all of them, accumulation making up the same windows per step).
struct FitProposal {
  std::string what;                // "with the flags given", "cheapest flags for --batch-size 16"
  std::vector<std::string> flags;  // flags to add to the command
  TrainOptions options;
  MemoryPlan plan;
};
std::vector<FitProposal> fit_memory(const GptConfig& config, const TrainOptions& options, const PlanTarget& target,
                                    double budget_bytes);

// What the CUDA context and the libraries' code take outside PyTorch's allocator (not in its
// figures, but on the GPU): subtracted from --gpu-memory before fitting.
constexpr double kCudaContextBytes = 600.0 * (1 << 20);

}  // namespace aios
