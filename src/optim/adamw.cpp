#include "optim/adamw.h"

#include <ATen/ATen.h>

namespace aios {

void fused_adamw_update(const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& grads,
                        const std::vector<at::Tensor>& exp_avg, const std::vector<at::Tensor>& exp_avg_sq,
                        const std::vector<at::Tensor>& steps, double lr, const at::Tensor& lr_on_device, double beta1,
                        double beta2, double weight_decay, double eps) {
  if (params.empty()) return;
  at::NoGradGuard no_grad;
  at::_foreach_add_(steps, 1.0);
  if (lr_on_device.defined()) {
    at::_fused_adamw_(params, grads, exp_avg, exp_avg_sq, /*max_exp_avg_sqs=*/{}, steps, lr_on_device, beta1, beta2,
                      weight_decay, eps, /*amsgrad=*/false, /*maximize=*/false);
  } else {
    at::_fused_adamw_(params, grads, exp_avg, exp_avg_sq, /*max_exp_avg_sqs=*/{}, steps, lr, beta1, beta2, weight_decay,
                      eps, /*amsgrad=*/false, /*maximize=*/false);
  }
}

AdamW::AdamW(std::vector<Group> groups, const AdamWSettings& s) : Optimizer(std::move(groups), s) {
  for (const auto& group : groups_) {
    GroupState state;
    for (const auto& p : group.params) {
      state.exp_avg.push_back(at::zeros_like(p, at::MemoryFormat::Preserve));
      state.exp_avg_sq.push_back(at::zeros_like(p, at::MemoryFormat::Preserve));
      state.steps.push_back(at::zeros({}, p.options().dtype(at::kFloat)));
    }
    state_.push_back(std::move(state));
  }
}

void AdamW::step() {
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    std::vector<at::Tensor> params, grads, exp_avg, exp_avg_sq, steps;
    for (std::size_t i = 0; i < groups_[g].params.size(); ++i) {
      const auto& p = groups_[g].params[i];
      if (!p.grad().defined()) continue;
      params.push_back(p);
      grads.push_back(p.grad());
      exp_avg.push_back(state_[g].exp_avg[i]);
      exp_avg_sq.push_back(state_[g].exp_avg_sq[i]);
      steps.push_back(state_[g].steps[i]);
    }
    fused_adamw_update(params, grads, exp_avg, exp_avg_sq, steps, lr_, lr_on_device_, beta1_, beta2_,
                       groups_[g].weight_decay, eps_);
  }
}

void AdamW::save(torch::serialize::OutputArchive& archive) const {
  for (std::size_t g = 0; g < state_.size(); ++g) {
    for (std::size_t i = 0; i < state_[g].exp_avg.size(); ++i) {
      const std::string key = std::to_string(g) + "." + std::to_string(i);
      archive.write("exp_avg." + key, state_[g].exp_avg[i], /*is_buffer=*/true);
      archive.write("exp_avg_sq." + key, state_[g].exp_avg_sq[i], /*is_buffer=*/true);
      archive.write("step." + key, state_[g].steps[i], /*is_buffer=*/true);
    }
  }
}

void AdamW::load(torch::serialize::InputArchive& archive) {
  for (std::size_t g = 0; g < state_.size(); ++g) {
    for (std::size_t i = 0; i < state_[g].exp_avg.size(); ++i) {
      const std::string key = std::to_string(g) + "." + std::to_string(i);
      restore_state_tensor(archive, "exp_avg." + key, state_[g].exp_avg[i]);
      restore_state_tensor(archive, "exp_avg_sq." + key, state_[g].exp_avg_sq[i]);
      restore_state_tensor(archive, "step." + key, state_[g].steps[i]);
    }
  }
}

std::int64_t AdamW::state_bytes() const {
  std::int64_t bytes = 0;
  for (const auto& state : state_) {
    for (std::size_t i = 0; i < state.exp_avg.size(); ++i) {
      bytes +=
          static_cast<std::int64_t>(state.exp_avg[i].nbytes() + state.exp_avg_sq[i].nbytes() + state.steps[i].nbytes());
    }
  }
  return bytes;
}

}  // namespace aios
