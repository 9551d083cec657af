// AdamW over a model's parameters in two groups: matrices get decoupled weight decay; biases,
// LayerNorm gains and (unless asked) embeddings do not.
#pragma once

#include <torch/nn/module.h>
#include <torch/optim/adamw.h>

#include <memory>

namespace aios {

struct AdamWSettings {
  double lr = 6e-4;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  bool decay_embeddings = false;
};

std::unique_ptr<torch::optim::AdamW> make_adamw(torch::nn::Module& model, const AdamWSettings& settings);

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

}  // namespace aios
