#include "optim/optimizer.h"

#include <ATen/ATen.h>

#include "base/error.h"
#include "optim/adamw.h"
#include "optim/adamw_8bit.h"

namespace aios {

Optimizer::Optimizer(std::vector<Group> groups, const AdamWSettings& s)
    : groups_(std::move(groups)), lr_(s.lr), beta1_(s.beta1), beta2_(s.beta2), eps_(s.eps) {
  for (const auto& group : groups_) {
    if (!group.params.empty() && group.params.front().is_cuda()) {
      lr_on_device_ = at::full({}, lr_, group.params.front().options().dtype(at::kFloat));
      break;
    }
  }
}

void Optimizer::set_learning_rate(double lr) {
  lr_ = lr;
  if (lr_on_device_.defined()) lr_on_device_.fill_(lr);  // queued on the stream: no sync
}

std::vector<at::Tensor> Optimizer::gradients() const {
  std::vector<at::Tensor> grads;
  for (const auto& group : groups_) {
    for (const auto& p : group.params) {
      if (p.grad().defined()) grads.push_back(p.grad());
    }
  }
  return grads;
}

at::Tensor gradient_norm(const std::vector<at::Tensor>& gradients) {
  return at::linalg_vector_norm(at::stack(at::_foreach_norm(gradients, 2)), 2);
}

void Optimizer::clip_gradients(double max_norm, const at::Tensor& global_norm) {
  const auto grads = gradients();
  if (max_norm <= 0 || grads.empty()) return;
  const auto coefficient = at::clamp_max(max_norm / (global_norm + 1e-6), 1.0);
  at::_foreach_mul_(grads, coefficient.to(grads.front().scalar_type()));
}

void restore_state_tensor(torch::serialize::InputArchive& archive, const std::string& name, at::Tensor& into) {
  at::Tensor value;
  if (!archive.try_read(name, value, /*is_buffer=*/true) || value.sizes() != into.sizes()) {
    throw Error("checkpoint", "optimizer state '" + name + "' is missing or has another shape",
                "a checkpoint written by the same optimizer (--use-8bit-optimizer as when it was written)");
  }
  at::NoGradGuard no_grad;
  into.copy_(value);
}

std::vector<Optimizer::Group> adamw_groups(torch::nn::Module& model, const AdamWSettings& s) {
  Optimizer::Group decay{{}, s.weight_decay}, no_decay{{}, 0.0};
  for (const auto& item : model.named_parameters()) {
    const std::string& name = item.key();
    const bool embedding = name == "wte.weight" || name == "wpe.weight";
    const bool matrix = item.value().dim() >= 2 && (!embedding || s.decay_embeddings);
    (matrix ? decay : no_decay).params.push_back(item.value());
  }
  return {decay, no_decay};
}

std::unique_ptr<Optimizer> make_adamw(std::vector<Optimizer::Group> groups, const AdamWSettings& settings,
                                      bool eight_bit) {
  if (eight_bit) return std::make_unique<AdamW8bit>(std::move(groups), settings);
  return std::make_unique<AdamW>(std::move(groups), settings);
}

}  // namespace aios
