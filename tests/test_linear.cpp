// kernels/linear.h against at::linear under autograd: the same function in float64, and under bf16
// autocast at least as close to float64 as PyTorch's own linear (its gradients reach the float32
// parameters without a bf16 rounding of their own, so they are usually closer).
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include "kernels/linear.h"
#include "memory/mixed_precision.h"

namespace aios {
namespace {

struct Result {
  torch::Tensor out, grad_x, grad_w, grad_b;
};

Result run(bool ours, const torch::Tensor& x0, const torch::Tensor& w0, const torch::Tensor& b0,
           const torch::Tensor& upstream, bool autocast) {
  auto x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_();
  auto b = b0.defined() ? b0.clone().requires_grad_() : torch::Tensor();
  torch::Tensor out;
  {
    AutocastRegion region(x.device().type(), autocast, torch::kBFloat16);
    out = ours ? linear(x, w, b) : at::linear(x, w, b);
  }
  (out.to(upstream.scalar_type()) * upstream).sum().backward();
  return {out.detach(), x.grad(), w.grad(), b.defined() ? b.grad() : torch::Tensor()};
}

double relative(const torch::Tensor& x, const torch::Tensor& reference) {
  const auto r = reference.to(torch::kCPU, torch::kDouble);
  return ((x.to(torch::kCPU, torch::kDouble) - r).norm() / r.norm()).item<double>();
}

TEST(Linear, EqualsAtenLinearInFloat64WithAndWithoutBias) {
  torch::manual_seed(51);
  const auto x = torch::randn({3, 5, 16}, torch::kDouble), w = torch::randn({24, 16}, torch::kDouble);
  const auto upstream = torch::randn({3, 5, 24}, torch::kDouble);
  for (const bool with_bias : {true, false}) {
    const auto b = with_bias ? torch::randn({24}, torch::kDouble) : torch::Tensor();
    const auto ours = run(true, x, w, b, upstream, false), aten = run(false, x, w, b, upstream, false);
    EXPECT_LE(relative(ours.out, aten.out), 1e-14);
    EXPECT_LE(relative(ours.grad_x, aten.grad_x), 1e-14);
    EXPECT_LE(relative(ours.grad_w, aten.grad_w), 1e-14);
    EXPECT_EQ(ours.grad_b.defined(), with_bias);
    if (with_bias) EXPECT_LE(relative(ours.grad_b, aten.grad_b), 1e-14);
  }
}

// Under bf16 autocast, float32 parameters and input: the gradients come back in float32, each at
// most 1.5 times (plus 1e-6) as far from float64 as at::linear's.
void expect_as_close_as_aten(const torch::Device& device) {
  torch::manual_seed(52);
  const auto x = torch::randn({4, 64, 96}, torch::kDouble), w = torch::randn({128, 96}, torch::kDouble) * 0.1;
  const auto b = torch::randn({128}, torch::kDouble), upstream = torch::randn({4, 64, 128}, torch::kDouble);
  const auto exact = run(false, x, w, b, upstream, false);
  const auto f = [&](const torch::Tensor& t) { return t.to(device, torch::kFloat); };
  const auto ours = run(true, f(x), f(w), f(b), f(upstream), true);
  const auto aten = run(false, f(x), f(w), f(b), f(upstream), true);
  EXPECT_EQ(ours.out.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(ours.out.cpu(), aten.out.cpu())) << "the same GEMM with the same operands";
  for (const auto& g : {ours.grad_x, ours.grad_w, ours.grad_b}) EXPECT_EQ(g.scalar_type(), torch::kFloat);
  const std::vector<std::pair<const char*, std::pair<torch::Tensor, torch::Tensor>>> grads = {
      {"input", {ours.grad_x, aten.grad_x}},
      {"weight", {ours.grad_w, aten.grad_w}},
      {"bias", {ours.grad_b, aten.grad_b}}};
  const std::vector<torch::Tensor> references = {exact.grad_x, exact.grad_w, exact.grad_b};
  for (std::size_t i = 0; i < grads.size(); ++i) {
    const double mine = relative(grads[i].second.first, references[i]);
    const double theirs = relative(grads[i].second.second, references[i]);
    EXPECT_LE(mine, 1.5 * theirs + 1e-6) << grads[i].first << " gradient";
    EXPECT_LT(mine, 1e-2) << grads[i].first << " gradient";
  }
}

TEST(Linear, UnderBf16AutocastIsAsCloseToFloat64AsAtenLinearOnTheCpu) { expect_as_close_as_aten(torch::kCPU); }

TEST(Linear, CudaUnderBf16AutocastIsAsCloseToFloat64AsAtenLinear) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device (runs in bench/run.sh)";
  expect_as_close_as_aten(torch::Device(torch::kCUDA));
}

}  // namespace
}  // namespace aios

namespace aios {
namespace {

// The weight gradient summed over chunks of rows against float64 products of the same bf16
// operands added up. Tolerance relative to the largest element: on CUDA float32 products (cuBLAS
// writes float32) added in float32, 1e-5; on the CPU ATen's bf16 product is rounded to bf16 before
// it is added (at most 2^-8 per chunk, 3 chunks).
void expect_chunked_weight_gradient_sums(const torch::Device& device, double tolerance) {
  torch::manual_seed(12);
  const auto options = torch::TensorOptions(device).dtype(torch::kBFloat16);
  std::vector<torch::Tensor> grads, inputs;
  for (int chunk = 0; chunk < 3; ++chunk) {
    grads.push_back(torch::randn({96, 40}, options));
    inputs.push_back(torch::randn({96, 24}, options));
  }
  auto summed = linear_weight_gradient(grads[0], inputs[0], torch::kFloat);
  for (int chunk = 1; chunk < 3; ++chunk) add_linear_weight_gradient(summed, grads[chunk], inputs[chunk]);
  auto reference = torch::zeros({40, 24}, torch::kDouble);
  for (int chunk = 0; chunk < 3; ++chunk) {
    reference += grads[chunk].to(torch::kCPU, torch::kDouble).t().mm(inputs[chunk].to(torch::kCPU, torch::kDouble));
  }
  EXPECT_EQ(summed.scalar_type(), torch::kFloat);
  EXPECT_LE((summed.to(torch::kCPU, torch::kDouble) - reference).abs().max().item<double>(),
            tolerance * reference.abs().max().item<double>());
}

TEST(Linear, ChunkedWeightGradientSumsToTheWholeProductOnTheCpu) {
  expect_chunked_weight_gradient_sums(torch::kCPU, 3.0 / 256);
}

TEST(Linear, CudaChunkedWeightGradientSumsToTheWholeProduct) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device (runs in bench/run.sh)";
  expect_chunked_weight_gradient_sums(torch::kCUDA, 1e-5);
}

}  // namespace
}  // namespace aios
