// What the training loop asks of an optimizer, whatever its state format: gradients to unscale
// and clip, a step, the state's size, and saving/loading that state. Parameters form two groups
// (optim/adamw.h): matrices get weight decay; biases, LayerNorm gains and (unless asked)
// embeddings do not.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <memory>
#include <string>
#include <vector>

namespace aios {

struct AdamWSettings {
  double lr = 6e-4;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  bool decay_embeddings = false;
};

class Optimizer {
 public:
  struct Group {
    std::vector<at::Tensor> params;
    double weight_decay = 0;
    // ZeRO shards: each whole parameter's element count, so that per-tensor decisions (8-bit or
    // fp32 state) do not depend on the world size. Empty: the tensors are whole parameters.
    std::vector<std::int64_t> full_numel;
  };

  virtual ~Optimizer() = default;

  // On a GPU the rate is also written to a device scalar that the update kernels read, so that a
  // step captured in a CUDA graph applies each step's rate, not the one of its capture.
  void set_learning_rate(double lr);
  std::vector<at::Tensor> gradients() const;  // the defined gradients, group by group
  // Scales the gradients so that the whole model's gradient, whose L2 norm is `global_norm` (a
  // device scalar, already reduced over ranks when the gradients are shards), has a norm of at
  // most max_norm; max_norm <= 0 leaves them alone. As torch.nn.utils.clip_grad_norm_: the factor
  // is min(1, max_norm / (norm + 1e-6)), computed on the device (no host sync).
  void clip_gradients(double max_norm, const at::Tensor& global_norm);

  virtual void step() = 0;
  const std::vector<Group>& groups() const { return groups_; }
  virtual std::string kind() const = 0;  // "adamw" or "adamw-8bit", checked when a checkpoint loads
  virtual std::int64_t state_bytes() const = 0;
  virtual void save(torch::serialize::OutputArchive& archive) const = 0;
  virtual void load(torch::serialize::InputArchive& archive) = 0;

 protected:
  Optimizer(std::vector<Group> groups, const AdamWSettings& settings);

  std::vector<Group> groups_;
  double lr_, beta1_, beta2_, eps_;
  at::Tensor lr_on_device_;  // float32 scalar on the parameters' GPU; undefined on the CPU
};

// The L2 norm over all of `gradients` (non-empty) as a device scalar: one multi-tensor norm launch.
at::Tensor gradient_norm(const std::vector<at::Tensor>& gradients);

// Copies the saved tensor `name` into `into`; a missing tensor or another shape is an error
// naming the key.
void restore_state_tensor(torch::serialize::InputArchive& archive, const std::string& name, at::Tensor& into);

// The two AdamW groups of a model: decay on matrices (and on embeddings when asked).
std::vector<Optimizer::Group> adamw_groups(torch::nn::Module& model, const AdamWSettings& settings);

// fp32 AdamW, or blockwise 8-bit AdamW (optim/adamw_8bit.h) when `eight_bit`.
std::unique_ptr<Optimizer> make_adamw(std::vector<Optimizer::Group> groups, const AdamWSettings& settings,
                                      bool eight_bit);

}  // namespace aios
