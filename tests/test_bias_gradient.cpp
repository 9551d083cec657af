// kernels/bias_gradient.h and kernels/linear_gelu.h against their references: ATen's column sum
// and autograd through at::linear then GELU, in float64 on the CPU (the same function) and on
// CUDA (the fused kernels against float64 sums of the same 16-bit values, and against ATen's path).
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include "kernels/bias_gradient.h"
#include "kernels/linear.h"
#include "kernels/linear_gelu.h"
#include "memory/mixed_precision.h"
#if AIOS_WITH_CUDA
#include "kernels/cuda_images.h"
#endif

namespace aios {
namespace {

struct Result {
  torch::Tensor out, grad_x, grad_w, grad_b;
};

// ours: linear_gelu; else autograd through at::linear (or, with `aios_linear`, kernels/linear.h)
// and at::gelu, the model's MLP before linear_gelu.
Result run(bool ours, const torch::Tensor& x0, const torch::Tensor& w0, const torch::Tensor& b0,
           const torch::Tensor& upstream, bool autocast, bool aios_linear = false) {
  auto x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_(), b = b0.clone().requires_grad_();
  torch::Tensor out;
  {
    AutocastRegion region(x.device().type(), autocast, torch::kBFloat16);
    out = ours ? linear_gelu(x, w, b) : at::gelu(aios_linear ? linear(x, w, b) : at::linear(x, w, b), "tanh");
  }
  (out.to(upstream.scalar_type()) * upstream).sum().backward();
  return {out.detach(), x.grad(), w.grad(), b.grad()};
}

double relative(const torch::Tensor& x, const torch::Tensor& reference) {
  const auto r = reference.to(torch::kCPU, torch::kDouble);
  return ((x.to(torch::kCPU, torch::kDouble) - r).norm() / r.norm()).item<double>();
}

TEST(LinearGelu, EqualsLinearThenGeluInFloat64) {
  torch::manual_seed(61);
  const auto x = torch::randn({3, 5, 16}, torch::kDouble), w = torch::randn({40, 16}, torch::kDouble) * 0.3;
  const auto b = torch::randn({40}, torch::kDouble), upstream = torch::randn({3, 5, 40}, torch::kDouble);
  const auto ours = run(true, x, w, b, upstream, false), aten = run(false, x, w, b, upstream, false);
  EXPECT_LE(relative(ours.out, aten.out), 1e-14);
  EXPECT_LE(relative(ours.grad_x, aten.grad_x), 1e-14);
  EXPECT_LE(relative(ours.grad_w, aten.grad_w), 1e-14);
  EXPECT_LE(relative(ours.grad_b, aten.grad_b), 1e-14);
}

// On the CPU under bf16 autocast the Function runs the ops autograd ran for kernels/linear.h
// followed by GELU (the same GEMM, gelu_backward and sums): the same bits.
TEST(LinearGelu, UnderBf16AutocastOnTheCpuGivesTheUnfusedPathsBits) {
  torch::manual_seed(62);
  const auto x = torch::randn({2, 8, 32}), w = torch::randn({64, 32}) * 0.2, b = torch::randn({64});
  const auto upstream = torch::randn({2, 8, 64});
  const auto ours = run(true, x, w, b, upstream, true), unfused = run(false, x, w, b, upstream, true, true);
  EXPECT_EQ(ours.out.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(ours.out, unfused.out));
  EXPECT_TRUE(torch::equal(ours.grad_x, unfused.grad_x));
  EXPECT_TRUE(torch::equal(ours.grad_w, unfused.grad_w));
  EXPECT_TRUE(torch::equal(ours.grad_b, unfused.grad_b));
}

TEST(BiasGradient, OnTheCpuIsAtensSum) {
  const auto g = torch::randn({33, 24}).to(torch::kBFloat16);
  EXPECT_STREQ(bias_gradient_path(g, torch::kFloat), "ATen");
  EXPECT_TRUE(torch::equal(bias_gradient(g, torch::kFloat), g.sum(0, false, torch::kFloat)));
}

// The column-sum kernel against float64 sums of the same 16-bit values, for one range of rows
// (37 rows), several (16384), none, widths of one and of several 256-column strips and one that
// ends inside a strip (264). Tolerance per column: 1e-5 of the sum of magnitudes, float32
// rounding over at most a few thousand terms added in blocks (about 1e-6 would be expected).
TEST(BiasGradient, CudaKernelEqualsFloat64SumsForBf16AndFp16) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device (runs in bench/run.sh)";
  torch::manual_seed(63);
  for (const auto type : {torch::kBFloat16, torch::kHalf}) {
    for (const auto& [rows, width] : std::vector<std::pair<std::int64_t, std::int64_t>>{
             {37, 768}, {16384, 768}, {4096, 3072}, {1000, 264}, {0, 768}}) {
      const auto g = (torch::randn({rows, width}, torch::kCUDA) + 0.5).to(type);
      ASSERT_STREQ(bias_gradient_path(g, torch::kFloat), "fused CUDA kernel");
      const auto sums = bias_gradient(g, torch::kFloat);
      ASSERT_EQ(sums.scalar_type(), torch::kFloat);
      ASSERT_EQ(sums.size(0), width);
      const auto exact = g.to(torch::kCPU, torch::kDouble).sum(0);
      const auto scale = g.to(torch::kCPU, torch::kDouble).abs().sum(0);
      const auto error = (sums.to(torch::kCPU, torch::kDouble) - exact).abs();
      EXPECT_TRUE((error <= 1e-5 * scale + 1e-30).all().item<bool>())
          << rows << " x " << width << ": largest error " << error.max().item<double>();
      EXPECT_TRUE(torch::equal(sums, bias_gradient(g, torch::kFloat))) << "the same bits on a second run";
    }
  }
  // Widths that are not a multiple of 8 and float32 gradients take ATen's sum.
  EXPECT_STREQ(bias_gradient_path(torch::ones({4, 12}, torch::kCUDA).to(torch::kBFloat16), torch::kFloat), "ATen");
  EXPECT_STREQ(bias_gradient_path(torch::ones({4, 16}, torch::kCUDA), torch::kFloat), "ATen");
}

// linear_gelu on CUDA under bf16 autocast, GPT-2's MLP shape: fused (cuBLASLt's GELU epilogue,
// the fused GELU backward and bias gradient) and unfused (the kernels switched off: at::linear,
// ATen's gelu and gelu_backward, a column sum), against float64. Both round to bf16 from float32
// arithmetic that may differ in the last bit (the fused forward rounds once where the unfused
// rounds GELU's input first), so the fused output and each gradient must be as close to float64
// as the unfused ones, to within 1.5 times plus 1e-6, and below 1e-2.
TEST(LinearGelu, CudaFusedBackwardIsAsCloseToFloat64AsAtens) {
#if AIOS_WITH_CUDA
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device (runs in bench/run.sh)";
  torch::manual_seed(64);
  const auto x = torch::randn({4, 128, 768}, torch::kDouble), w = torch::randn({3072, 768}, torch::kDouble) * 0.03;
  const auto b = torch::randn({3072}, torch::kDouble) * 0.1, upstream = torch::randn({4, 128, 3072}, torch::kDouble);
  const auto exact = run(false, x, w, b, upstream, false);
  const auto f = [](const torch::Tensor& t) { return t.to(torch::kCUDA, torch::kFloat); };
  const auto fused = run(true, f(x), f(w), f(b), f(upstream), true);
  force_aten_kernels_for_testing(true);
  const auto aten = run(true, f(x), f(w), f(b), f(upstream), true);
  force_aten_kernels_for_testing(false);
  EXPECT_EQ(fused.out.scalar_type(), torch::kBFloat16);
  const std::vector<std::tuple<const char*, torch::Tensor, torch::Tensor, torch::Tensor>> grads = {
      {"output", fused.out, aten.out, exact.out},
      {"input", fused.grad_x, aten.grad_x, exact.grad_x},
      {"weight", fused.grad_w, aten.grad_w, exact.grad_w},
      {"bias", fused.grad_b, aten.grad_b, exact.grad_b}};
  for (const auto& [name, mine, theirs, reference] : grads) {
    if (std::string(name) == "output") {
      EXPECT_FALSE(torch::equal(mine, theirs)) << "the same bits as the unfused forward: the epilogue did not run";
    }
    if (std::string(name) != "output") EXPECT_EQ(mine.scalar_type(), torch::kFloat) << name;
    EXPECT_LE(relative(mine, reference), 1.5 * relative(theirs, reference) + 1e-6) << name << " gradient";
    EXPECT_LT(relative(mine, reference), 1e-2) << name << " gradient";
  }
#else
  GTEST_SKIP() << "a CPU build of aios has no CUDA kernels";
#endif
}

}  // namespace
}  // namespace aios
