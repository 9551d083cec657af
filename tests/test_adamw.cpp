#include <gtest/gtest.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>

#include "optim/adamw.h"
#include "optim/lr_schedule.h"

namespace aios {
namespace {

// aios's fused AdamW against LibTorch's per-parameter torch::optim::AdamW (the reference), with
// two groups of different weight decay and changing learning rates.
void compare_with_reference(torch::Dtype dtype, double tolerance) {
  torch::manual_seed(5);
  std::vector<torch::Tensor> ours, theirs;
  for (auto shape : {std::vector<int64_t>{7, 5}, {5}, {3, 4, 2}}) {
    auto p = torch::randn(shape, dtype);
    ours.push_back(p.clone().requires_grad_());
    theirs.push_back(p.clone().requires_grad_());
  }
  AdamWSettings settings{1e-2, 0.9, 0.95, 1e-8, 0.1, false};
  AdamW optimizer({{{ours[0], ours[2]}, 0.1}, {{ours[1]}, 0.0}}, settings);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<torch::Tensor>{theirs[0], theirs[2]},
                      std::make_unique<torch::optim::AdamWOptions>(
                          torch::optim::AdamWOptions(1e-2).betas({0.9, 0.95}).eps(1e-8).weight_decay(0.1)));
  groups.emplace_back(std::vector<torch::Tensor>{theirs[1]},
                      std::make_unique<torch::optim::AdamWOptions>(
                          torch::optim::AdamWOptions(1e-2).betas({0.9, 0.95}).eps(1e-8).weight_decay(0.0)));
  torch::optim::AdamW reference(std::move(groups), torch::optim::AdamWOptions(1e-2));
  for (int step = 0; step < 6; ++step) {
    const double lr = 1e-2 / (step + 1);
    optimizer.set_learning_rate(lr);
    for (auto& group : reference.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    for (std::size_t i = 0; i < ours.size(); ++i) {
      auto grad = torch::randn_like(ours[i]);
      ours[i].mutable_grad() = grad.clone();
      theirs[i].mutable_grad() = grad.clone();
    }
    optimizer.step();
    reference.step();
  }
  for (std::size_t i = 0; i < ours.size(); ++i) {
    const double diff = (ours[i] - theirs[i]).abs().max().item<double>();
    EXPECT_LT(diff, tolerance) << "tensor " << i;
  }
}

TEST(AdamW, MatchesTorchAdamWInFloat32) { compare_with_reference(torch::kFloat, 1e-6); }
TEST(AdamW, MatchesTorchAdamWInFloat64) { compare_with_reference(torch::kDouble, 1e-12); }

TEST(AdamW, ClipMatchesTorchClipGradNorm) {
  torch::manual_seed(6);
  auto a = torch::randn({10, 10}).requires_grad_(), b = torch::randn({10}).requires_grad_();
  auto a2 = a.detach().clone().requires_grad_(), b2 = b.detach().clone().requires_grad_();
  for (auto* pair : {&a, &b}) pair->mutable_grad() = 3 * torch::randn_like(*pair);
  a2.mutable_grad() = a.grad().clone();
  b2.mutable_grad() = b.grad().clone();
  AdamW optimizer({{{a, b}, 0.0}}, {});
  const auto norm = gradient_norm(optimizer.gradients());
  optimizer.clip_gradients(1.0, norm);
  const double ours = norm.item<double>();
  const double theirs = torch::nn::utils::clip_grad_norm_(std::vector<torch::Tensor>{a2, b2}, 1.0);
  EXPECT_NEAR(ours, theirs, 1e-5 * theirs);
  EXPECT_LT((a.grad() - a2.grad()).abs().max().item<double>(), 1e-7);
  EXPECT_NEAR(torch::cat({a.grad().flatten(), b.grad()}).norm().item<double>(), 1.0, 1e-5);
  // Below the limit nothing changes.
  const auto before = a.grad().clone();
  optimizer.clip_gradients(100.0, gradient_norm(optimizer.gradients()));
  EXPECT_TRUE(torch::equal(before, a.grad()));
}

TEST(LrSchedule, WarmupThenCosineToTheFloor) {
  const LrSchedule s{1.0, 0.1, 10, 110};
  EXPECT_DOUBLE_EQ(s.at(0), 0.1);
  EXPECT_DOUBLE_EQ(s.at(9), 1.0);
  EXPECT_DOUBLE_EQ(s.at(10), 1.0);
  // Decay runs over steps 10..109 (99 intervals): a third of the way, cos(pi/3) = 1/2.
  EXPECT_NEAR(s.at(10 + 33), 0.1 + 0.45 * 1.5, 1e-12);
  EXPECT_NEAR(s.at(10 + 66), 0.1 + 0.45 * 0.5, 1e-12);
  EXPECT_DOUBLE_EQ(s.at(109), 0.1);
}

}  // namespace
}  // namespace aios
