// split_heads: views of a fused q/k/v projection whose backward writes the three gradients into one
// tensor. Checked against autograd through the same views (unbind), which is exact: both only move
// values, so the gradients must be equal bit for bit.
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include "kernels/attention_heads.h"

namespace aios {
namespace {

// The gradient of Σ (q·a + k·b + v·c) with respect to the projection, by split_heads or by
// autograd through view/permute/unbind; `use` says which of q, k, v the loss reads.
torch::Tensor projection_gradient(const torch::Tensor& qkv0, std::int64_t heads, bool fused,
                                  const std::array<bool, 3>& use, const std::array<torch::Tensor, 3>& weights) {
  auto qkv = qkv0.clone().requires_grad_();
  std::array<torch::Tensor, 3> parts;
  if (fused) {
    parts = split_heads(qkv, heads);
  } else {
    const auto b = qkv.size(0), t = qkv.size(1), c = qkv.size(2) / 3;
    const auto u = qkv.view({b, t, 3, heads, c / heads}).permute({2, 0, 3, 1, 4}).unbind(0);
    parts = {u[0], u[1], u[2]};
  }
  auto loss = torch::zeros({}, qkv.options().dtype(torch::kFloat));
  for (int s = 0; s < 3; ++s) {
    // The keys read through a [B, T, H, D] copy, so that their gradient arrives in that layout (as
    // an attention kernel may return it): the kernel reads each part by its own strides.
    if (use[s])
      loss = loss + (s == 1 ? parts[s].transpose(1, 2).contiguous().transpose(1, 2) : parts[s])
                        .mul(weights[s])
                        .sum()
                        .to(torch::kFloat);
  }
  loss.backward();
  return qkv.grad();
}

TEST(SplitHeads, ViewsEqualTheProjectionsHeadsAndTheGradientIsAutogradsExactly) {
  torch::manual_seed(41);
  const std::int64_t batch = 2, time = 5, heads = 3, head_dim = 4, width = heads * head_dim;
  const auto qkv = torch::randn({batch, time, 3 * width});
  const auto parts = split_heads(qkv, heads);
  for (int s = 0; s < 3; ++s) {
    EXPECT_TRUE(
        torch::equal(parts[s], qkv.narrow(2, s * width, width).view({batch, time, heads, head_dim}).transpose(1, 2)))
        << s;
    EXPECT_EQ(parts[s].data_ptr(), static_cast<char*>(qkv.data_ptr()) + s * width * 4) << "a view, not a copy";
  }
  std::array<torch::Tensor, 3> weights;
  for (auto& w : weights) w = torch::randn({batch, heads, time, head_dim});
  for (const auto& use : {std::array<bool, 3>{true, true, true}, std::array<bool, 3>{true, false, true}}) {
    EXPECT_TRUE(torch::equal(projection_gradient(qkv, heads, true, use, weights),
                             projection_gradient(qkv, heads, false, use, weights)))
        << "keys used: " << use[1];
  }
}

TEST(SplitHeads, CudaKernelGradientEqualsAutogradBitForBit) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device (runs in bench/run.sh)";
  torch::manual_seed(42);
  const torch::Device cuda(torch::kCUDA);
  struct Shape {
    std::int64_t batch, time, heads, head_dim;
  };
  // GPT-2's head size (64: 16-byte moves); more rows than one grid dimension holds (65,535), each
  // head one 16-byte unit in bf16; an odd head size (6: 12 bytes in bf16, the ATen copies).
  for (const Shape shape : {Shape{3, 37, 4, 64}, Shape{2, 35000, 1, 8}, Shape{3, 37, 4, 6}}) {
    for (const auto type : {torch::kBFloat16, torch::kFloat}) {
      const auto qkv = torch::randn({shape.batch, shape.time, 3 * shape.heads * shape.head_dim}).to(cuda, type);
      std::array<torch::Tensor, 3> weights;
      for (auto& w : weights) w = torch::randn({shape.batch, shape.heads, shape.time, shape.head_dim}).to(cuda, type);
      for (const auto& use : {std::array<bool, 3>{true, true, true}, std::array<bool, 3>{false, true, true}}) {
        EXPECT_TRUE(torch::equal(projection_gradient(qkv, shape.heads, true, use, weights).cpu(),
                                 projection_gradient(qkv, shape.heads, false, use, weights).cpu()))
            << shape.batch << " x " << shape.time << " rows, head size " << shape.head_dim << ", "
            << c10::toString(type) << ", queries used: " << use[0];
      }
    }
  }
}

}  // namespace
}  // namespace aios
