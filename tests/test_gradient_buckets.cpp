// Gradient buckets on a real model, one process (the collectives are identities): the buckets go
// out while backward is still running (cut in backward order), and what they deliver is exactly
// the gradient of a plain backward, under every memory technique that changes how backward runs:
// block checkpointing (with its hand-differentiated MLP projection), the chunked loss (the tied
// embedding's head gradient formed in the forward) and exact chunked training (several backward
// calls per micro-batch). A bucket launched before one of its gradients was final would miss that
// gradient's later contributions and fail here.
#include <gtest/gtest.h>

#include "distributed/comm.h"
#include "distributed/gradient_all_reduce.h"
#include "distributed/zero_sharding.h"
#include "memory/activation_checkpoint.h"
#include "memory/chunked_cross_entropy.h"
#include "memory/chunked_training.h"
#include "optim/optimizer.h"

namespace aios {
namespace {

struct Variant {
  const char* name;
  bool checkpointing, chunked_loss, exact_chunks;
};

const Variant kVariants[] = {{"plain", false, false, false},
                             {"checkpointing", true, false, false},
                             {"chunked loss", false, true, false},
                             {"checkpointing + chunked loss + exact chunks", true, true, true}};

class GradientBuckets : public testing::TestWithParam<Variant> {
 protected:
  void SetUp() override {
    torch::manual_seed(5);
    GptConfig c = gpt_preset("tiny");
    c.n_layer = 3, c.n_embd = 64, c.n_head = 2, c.vocab_size = 67, c.max_positions = 32, c.dropout = 0.0;
    model_ = Gpt(c);
    const Variant v = GetParam();
    if (v.checkpointing) apply_activation_checkpointing(model_, 1);
    apply_chunked_loss(model_, v.chunked_loss ? 24 : 0);
    model_->to(torch::kDouble);  // float64: the only differences allowed are none
    tokens_ = torch::randint(0, 67, {2, 33}, torch::kLong);
  }

  // One micro-batch's backward; `before_last_backward` arms the buckets.
  void backward(const std::function<void()>& before_last_backward) {
    const auto inputs = tokens_.slice(1, 0, 32), targets = tokens_.slice(1, 1, 33);
    if (GetParam().exact_chunks) {
      chunked_forward_backward(
          model_, inputs, targets, {ChunkMode::kExact, 8, 0}, MixedPrecision{},
          [](const torch::Tensor& loss) { return loss; }, before_last_backward);
    } else {
      const auto loss = model_->loss_sum(inputs, targets);
      before_last_backward();
      loss.backward();
    }
  }

  std::vector<torch::Tensor> reference_gradients() {
    backward([] {});
    std::vector<torch::Tensor> grads;
    for (auto& p : model_->parameters()) {
      grads.push_back(p.grad().clone());
      p.mutable_grad() = torch::Tensor();
    }
    return grads;
  }

  Gpt model_{nullptr};
  torch::Tensor tokens_;
};

std::int64_t count(const std::vector<torch::Tensor>& params) { return static_cast<std::int64_t>(params.size()); }

TEST_P(GradientBuckets, ZeroDeliversThePlainGradientsAndReleasesTheFullOnes) {
  const auto expected = reference_gradients();
  const auto params = model_->parameters();
  const auto comm = make_comm(torch::kCPU);  // one process: reduce-scatter copies its input
  // 16 KB buckets: several per block, so the schedule's order matters.
  ZeroSharding zero(adamw_groups(*model_, AdamWSettings{}), *comm, 16 * 1024, params);
  ASSERT_GT(zero.buckets(), 6u);
  backward([&] { zero.start(); });
  zero.finish();
  // Most of the backward was still to run when the first bucket went out.
  EXPECT_GT(static_cast<std::int64_t>(zero.schedule().pending_at_first_launch()), count(params) / 2);
  for (const auto& p : params) EXPECT_FALSE(p.grad().defined()) << "a full gradient was kept";
  // World 1: each shard is its whole parameter; the optimizer's groups hold them in model order by group.
  std::map<const void*, torch::Tensor> expected_by_param;
  for (std::size_t i = 0; i < params.size(); ++i) expected_by_param[params[i].unsafeGetTensorImpl()] = expected[i];
  const auto groups = zero.optimizer_groups();
  const auto full = adamw_groups(*model_, AdamWSettings{});
  for (std::size_t g = 0; g < groups.size(); ++g) {
    for (std::size_t i = 0; i < groups[g].params.size(); ++i) {
      const auto& want = expected_by_param.at(full[g].params[i].unsafeGetTensorImpl());
      ASSERT_TRUE(groups[g].params[i].grad().defined());
      EXPECT_TRUE(torch::equal(groups[g].params[i].grad(), want.reshape({-1}))) << "group " << g << " param " << i;
    }
  }
}

TEST_P(GradientBuckets, AllReduceDeliversThePlainGradients) {
  const auto expected = reference_gradients();
  const auto params = model_->parameters();
  const auto comm = make_comm(torch::kCPU);
  GradientAllReduce all_reduce(adamw_groups(*model_, AdamWSettings{}), params, *comm, 16 * 1024);
  ASSERT_GT(all_reduce.buckets(), 6u);
  backward([&] { all_reduce.start(); });
  all_reduce.finish();
  EXPECT_GT(static_cast<std::int64_t>(all_reduce.schedule().pending_at_first_launch()), count(params) / 2);
  for (std::size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(torch::equal(params[i].grad(), expected[i])) << "parameter " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Techniques, GradientBuckets, testing::ValuesIn(kVariants),
                         [](const testing::TestParamInfo<Variant>& info) {
                           std::string name = info.param.name;
                           for (auto& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return name;
                         });

TEST(BackwardOrder, ReversesTheModelOrderAndPutsUnknownParametersLast) {
  const std::vector<at::Tensor> model = {at::zeros({1}), at::zeros({2}), at::zeros({3})};
  const std::vector<at::Tensor> params = {model[1], at::zeros({4}), model[0], model[2]};
  EXPECT_EQ(backward_order(params, model), (std::vector<std::size_t>{3, 0, 2, 1}));
}

}  // namespace
}  // namespace aios
