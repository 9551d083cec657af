// AdamW (Loshchilov & Hutter, decoupled weight decay) through ATen's fused multi-tensor kernel
// (_fused_adamw_: one launch per parameter group instead of ~10 per parameter), with global-norm
// clipping through _foreach_norm. Tested against torch::optim::AdamW (tests/test_adamw.cpp).
//
// Parameters form two groups: matrices get weight decay; biases, LayerNorm gains and (unless
// asked) embeddings do not.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

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

class AdamW {
 public:
  struct Group {
    std::vector<at::Tensor> params;
    double weight_decay = 0;
  };

  AdamW(std::vector<Group> groups, const AdamWSettings& settings);
  static AdamW for_model(torch::nn::Module& model, const AdamWSettings& settings);

  void set_learning_rate(double lr) { lr_ = lr; }
  void zero_grad();  // gradients set to undefined, so the next backward writes instead of adds
  // Scales gradients so that their global L2 norm is at most max_norm (max_norm <= 0: only
  // measures). Returns the norm before clipping (a host sync).
  double clip_grad_norm(double max_norm);
  void step();

  void save(torch::serialize::OutputArchive& archive) const;
  void load(torch::serialize::InputArchive& archive);
  std::int64_t state_bytes() const;  // optimizer state: both moments and step counters

 private:
  struct GroupState {
    Group group;
    std::vector<at::Tensor> exp_avg;     // first moment, like the parameter
    std::vector<at::Tensor> exp_avg_sq;  // second moment, like the parameter
    std::vector<at::Tensor> steps;       // float32 scalars on the parameter's device (fused kernel API)
  };
  std::vector<GroupState> groups_;
  double lr_;
  double beta1_, beta2_, eps_;
};

}  // namespace aios
