#include "optim/adamw.h"

#include <ATen/ATen.h>

#include "base/error.h"

namespace aios {

AdamW::AdamW(std::vector<Group> groups, const AdamWSettings& s)
    : lr_(s.lr), beta1_(s.beta1), beta2_(s.beta2), eps_(s.eps) {
  for (auto& group : groups) {
    GroupState state;
    for (const auto& p : group.params) {
      state.exp_avg.push_back(at::zeros_like(p, at::MemoryFormat::Preserve));
      state.exp_avg_sq.push_back(at::zeros_like(p, at::MemoryFormat::Preserve));
      state.steps.push_back(at::zeros({}, p.options().dtype(at::kFloat)));
    }
    state.group = std::move(group);
    groups_.push_back(std::move(state));
  }
}

AdamW AdamW::for_model(torch::nn::Module& model, const AdamWSettings& s) {
  Group decay{{}, s.weight_decay}, no_decay{{}, 0.0};
  for (const auto& item : model.named_parameters()) {
    const std::string& name = item.key();
    const bool embedding = name == "wte.weight" || name == "wpe.weight";
    const bool matrix = item.value().dim() >= 2 && (!embedding || s.decay_embeddings);
    (matrix ? decay : no_decay).params.push_back(item.value());
  }
  return AdamW({decay, no_decay}, s);
}

void AdamW::zero_grad() {
  for (auto& state : groups_) {
    for (auto& p : state.group.params) p.mutable_grad() = at::Tensor();
  }
}

double AdamW::clip_grad_norm(double max_norm) {
  std::vector<at::Tensor> grads;
  for (const auto& state : groups_) {
    for (const auto& p : state.group.params) {
      if (p.grad().defined()) grads.push_back(p.grad());
    }
  }
  if (grads.empty()) return 0.0;
  const auto norms = at::_foreach_norm(grads, 2);
  const auto total = at::linalg_vector_norm(at::stack(norms), 2);
  if (max_norm > 0) {
    // As torch.nn.utils.clip_grad_norm_: scale by min(1, max_norm / (norm + 1e-6)) on the device.
    const auto coefficient = at::clamp_max(max_norm / (total + 1e-6), 1.0);
    at::_foreach_mul_(grads, coefficient.to(grads.front().scalar_type()));
  }
  return total.item<double>();  // sync
}

void AdamW::step() {
  for (auto& state : groups_) {
    std::vector<at::Tensor> params, grads, exp_avg, exp_avg_sq, steps;
    for (std::size_t i = 0; i < state.group.params.size(); ++i) {
      const auto& p = state.group.params[i];
      if (!p.grad().defined()) continue;
      params.push_back(p);
      grads.push_back(p.grad());
      exp_avg.push_back(state.exp_avg[i]);
      exp_avg_sq.push_back(state.exp_avg_sq[i]);
      steps.push_back(state.steps[i]);
    }
    if (params.empty()) continue;
    at::NoGradGuard no_grad;
    at::_foreach_add_(steps, 1.0);
    at::_fused_adamw_(params, grads, exp_avg, exp_avg_sq, /*max_exp_avg_sqs=*/{}, steps, lr_, beta1_, beta2_,
                      state.group.weight_decay, eps_, /*amsgrad=*/false, /*maximize=*/false);
  }
}

void AdamW::save(torch::serialize::OutputArchive& archive) const {
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    for (std::size_t i = 0; i < groups_[g].exp_avg.size(); ++i) {
      const std::string key = std::to_string(g) + "." + std::to_string(i);
      archive.write("exp_avg." + key, groups_[g].exp_avg[i], /*is_buffer=*/true);
      archive.write("exp_avg_sq." + key, groups_[g].exp_avg_sq[i], /*is_buffer=*/true);
      archive.write("step." + key, groups_[g].steps[i], /*is_buffer=*/true);
    }
  }
}

void AdamW::load(torch::serialize::InputArchive& archive) {
  at::NoGradGuard no_grad;
  auto restore = [&archive](const std::string& name, at::Tensor& into) {
    at::Tensor value;
    if (!archive.try_read(name, value, /*is_buffer=*/true) || value.sizes() != into.sizes()) {
      throw Error("checkpoint", "optimizer state '" + name + "' is missing or has another shape");
    }
    into.copy_(value);
  };
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    for (std::size_t i = 0; i < groups_[g].exp_avg.size(); ++i) {
      const std::string key = std::to_string(g) + "." + std::to_string(i);
      restore("exp_avg." + key, groups_[g].exp_avg[i]);
      restore("exp_avg_sq." + key, groups_[g].exp_avg_sq[i]);
      restore("step." + key, groups_[g].steps[i]);
    }
  }
}

std::int64_t AdamW::state_bytes() const {
  std::int64_t bytes = 0;
  for (const auto& state : groups_) {
    for (std::size_t i = 0; i < state.exp_avg.size(); ++i) {
      bytes += static_cast<std::int64_t>(state.exp_avg[i].nbytes() + state.exp_avg_sq[i].nbytes() + state.steps[i].nbytes());
    }
  }
  return bytes;
}

}  // namespace aios
