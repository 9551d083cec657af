#include "optim/optimizer.h"

#include <ATen/ATen.h>

#include <cmath>

#include "dist/comm.h"

#include "base/error.h"
#include "optim/adamw.h"
#include "optim/adamw_8bit.h"

namespace aios {

Optimizer::Optimizer(std::vector<Group> groups, const AdamWSettings& s)
    : groups_(std::move(groups)), lr_(s.lr), beta1_(s.beta1), beta2_(s.beta2), eps_(s.eps) {}

void Optimizer::zero_grad() {
  for (auto& group : groups_) {
    for (auto& p : group.params) p.mutable_grad() = at::Tensor();
  }
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

double Optimizer::clip_grad_norm(double max_norm, Comm* comm) {
  const auto grads = gradients();
  if (grads.empty() && comm == nullptr) return 0.0;
  if (comm != nullptr) {
    // Shards: the global norm is the square root of the summed squared shard norms.
    double squares = 0.0;
    if (!grads.empty()) {
      squares = at::linalg_vector_norm(at::stack(at::_foreach_norm(grads, 2)), 2).pow(2).item<double>();  // sync
    }
    const double total = std::sqrt(comm->sum_over_ranks(squares));
    if (max_norm > 0 && !grads.empty() && std::isfinite(total)) {
      const double coefficient = std::min(1.0, max_norm / (total + 1e-6));
      if (coefficient < 1.0) at::_foreach_mul_(grads, coefficient);
    }
    return total;
  }
  const auto norms = at::_foreach_norm(grads, 2);
  const auto total = at::linalg_vector_norm(at::stack(norms), 2);
  if (max_norm > 0) {
    // As torch.nn.utils.clip_grad_norm_: scale by min(1, max_norm / (norm + 1e-6)) on the device.
    const auto coefficient = at::clamp_max(max_norm / (total + 1e-6), 1.0);
    at::_foreach_mul_(grads, coefficient.to(grads.front().scalar_type()));
  }
  return total.item<double>();  // sync
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
