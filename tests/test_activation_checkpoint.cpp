#include <ATen/Context.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include "memory/activation_checkpoint.h"
#include "memory/kept_attention.h"

namespace aios {
namespace {

struct Gradients {
  double loss;
  std::vector<torch::Tensor> grads;
};

Gradients run(std::int64_t checkpoint_every, double dropout, torch::Device device = torch::kCPU,
              torch::Dtype dtype = torch::kFloat, bool keep_attention = true, std::int64_t width = 32) {
  torch::manual_seed(11);
  GptConfig c = gpt_preset("tiny");
  c.n_layer = 3, c.n_embd = width, c.n_head = 2, c.vocab_size = 61, c.max_positions = 64, c.dropout = dropout;
  Gpt model(c);
  model->to(device, dtype);
  apply_activation_checkpointing(model, checkpoint_every, keep_attention);
  const auto tokens = torch::randint(0, 61, {2, 64}, torch::kLong).to(device);
  const auto targets = torch::randint(0, 61, {2, 64}, torch::kLong).to(device);
  torch::manual_seed(12);  // same dropout stream for every variant (seeds CUDA too)
  const auto loss = model->loss_sum(tokens, targets);
  loss.backward();
  Gradients result{loss.item<double>(), {}};
  for (const auto& p : model->parameters()) result.grads.push_back(p.grad().cpu().to(torch::kDouble));
  return result;
}

void expect_same(const Gradients& a, const Gradients& b, double tolerance = 1e-6, bool same_loss = true) {
  if (same_loss) EXPECT_EQ(a.loss, b.loss);
  ASSERT_EQ(a.grads.size(), b.grads.size());
  for (std::size_t i = 0; i < a.grads.size(); ++i) {
    ASSERT_TRUE(a.grads[i].defined() && b.grads[i].defined()) << i;
    // fp32 on the CPU: the recomputation runs the same kernels on the same inputs; the bound is
    // the 1e-6 relative to the largest gradient of the tensor.
    const double scale = a.grads[i].abs().max().item<double>();
    EXPECT_LE((a.grads[i] - b.grads[i]).abs().max().item<double>(), tolerance * scale) << "tensor " << i;
  }
}

TEST(ActivationCheckpointing, GradientsEqualTheUncheckpointedModel) {
  const auto plain = run(0, 0.0);
  expect_same(plain, run(1, 0.0));  // every block
  expect_same(plain, run(2, 0.0));  // selective: blocks 0 and 2
}

TEST(ActivationCheckpointing, DropoutMasksAreReplayed) {
  const auto plain = run(0, 0.2);
  const auto checkpointed = run(1, 0.2);
  expect_same(plain, checkpointed);
  EXPECT_NE(plain.loss, run(0, 0.0).loss);  // dropout really was active
}

TEST(ActivationCheckpointing, CudaGradientsAndDropoutMatch) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device (runs in bench/run.sh test)";
  const torch::Device cuda(torch::kCUDA, 0);
  // The fused SDPA backward may accumulate with atomics (libtorch_api.md §1.6): 1e-5 relative.
  expect_same(run(0, 0.0, cuda), run(1, 0.0, cuda), 1e-5);
  expect_same(run(0, 0.2, cuda), run(1, 0.2, cuda), 1e-5);
}

// Only one SDPA kernel on for the object's lifetime.
class OnlyAttentionKernel {
 public:
  explicit OnlyAttentionKernel(bool cudnn)
      : flash_(at::globalContext().userEnabledFlashSDP()),
        efficient_(at::globalContext().userEnabledMemEfficientSDP()),
        math_(at::globalContext().userEnabledMathSDP()),
        cudnn_(at::globalContext().userEnabledCuDNNSDP()) {
    auto& c = at::globalContext();
    c.setSDPUseFlash(!cudnn), c.setSDPUseMemEfficient(false), c.setSDPUseMath(false), c.setSDPUseCuDNN(cudnn);
  }
  ~OnlyAttentionKernel() {
    auto& c = at::globalContext();
    c.setSDPUseFlash(flash_), c.setSDPUseMemEfficient(efficient_), c.setSDPUseMath(math_), c.setSDPUseCuDNN(cudnn_);
  }

 private:
  bool flash_, efficient_, math_, cudnn_;
};

// The kept output replayed as the attention of fresh q, k, v: the same output and the same
// gradients as SDPA's own autograd, for flash and for cuDNN (bf16; both run the same kernels, so the
// bound, 1e-2 of the largest value, only allows for atomics in the backward).
TEST(KeptAttention, CudaReplayGivesSdpaOutputAndGradients) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device (runs in bench/run.sh test)";
  for (bool cudnn : {false, true}) {
    const OnlyAttentionKernel only(cudnn);
    torch::manual_seed(4);
    const auto options = torch::TensorOptions(torch::kCUDA).dtype(torch::kBFloat16);
    const auto q = torch::randn({2, 4, 256, 64}, options), k = torch::randn({2, 4, 256, 64}, options),
               v = torch::randn({2, 4, 256, 64}, options), grad = torch::randn({2, 4, 256, 64}, options);
    const auto leaf = [](const torch::Tensor& t) { return t.detach().clone().requires_grad_(true); };
    auto q1 = leaf(q), k1 = leaf(k), v1 = leaf(v);
    const auto expected = at::scaled_dot_product_attention(q1, k1, v1, {}, 0.0, /*is_causal=*/true);
    expected.backward(grad);

    KeptAttention kept;
    {
      torch::NoGradGuard no_grad;
      kept.run_and_keep(q, k, v);
    }
    ASSERT_TRUE(kept.holds()) << (cudnn ? "cuDNN" : "flash") << ": nothing kept";
    auto q2 = leaf(q), k2 = leaf(k), v2 = leaf(v);
    const auto replayed = kept.replay(q2, k2, v2);
    EXPECT_FALSE(kept.holds());
    replayed.backward(grad);
    const auto close = [](const torch::Tensor& a, const torch::Tensor& b) {
      return (a.to(torch::kFloat) - b.to(torch::kFloat)).abs().max().item<double>() <=
             1e-2 * b.to(torch::kFloat).abs().max().item<double>();
    };
    EXPECT_TRUE(close(replayed, expected)) << (cudnn ? "cuDNN" : "flash") << " output";
    EXPECT_TRUE(close(q2.grad(), q1.grad())) << (cudnn ? "cuDNN" : "flash") << " query gradient";
    EXPECT_TRUE(close(k2.grad(), k1.grad())) << (cudnn ? "cuDNN" : "flash") << " key gradient";
    EXPECT_TRUE(close(v2.grad(), v1.grad())) << (cudnn ? "cuDNN" : "flash") << " value gradient";
  }
}

// A bf16 model checkpointed with kept attention outputs against the same without them and against
// no checkpointing (flash and cuDNN; head width 64): gradients within 2e-2 of each tensor's largest,
// bf16's rounding through three blocks.
TEST(ActivationCheckpointing, CudaKeptAttentionGradientsMatch) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device (runs in bench/run.sh test)";
  const torch::Device cuda(torch::kCUDA, 0);
  for (bool cudnn : {false, true}) {
    const OnlyAttentionKernel only(cudnn);
    const auto kept = run(1, 0.0, cuda, torch::kBFloat16, /*keep_attention=*/true, /*width=*/128);
    const auto recomputed = run(1, 0.0, cuda, torch::kBFloat16, /*keep_attention=*/false, /*width=*/128);
    const auto plain = run(0, 0.0, cuda, torch::kBFloat16, /*keep_attention=*/false, /*width=*/128);
    expect_same(recomputed, kept, 2e-2, /*same_loss=*/false);
    expect_same(plain, kept, 2e-2, /*same_loss=*/false);
    EXPECT_NEAR(kept.loss, plain.loss, 1e-2 * std::abs(plain.loss));
  }
}

}  // namespace
}  // namespace aios
