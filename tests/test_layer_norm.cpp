#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/nn/modules/normalization.h>

#include "kernels/layer_norm.h"
#include "memory/mixed_precision.h"

namespace aios {
namespace {

double max_difference(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kCPU, torch::kDouble) - b.to(torch::kCPU, torch::kDouble)).abs().max().item<double>();
}

TEST(LayerNorm, OnTheCpuItIsTorchsLayerNormBitForBit) {
  torch::manual_seed(41);
  torch::nn::LayerNorm module(torch::nn::LayerNormOptions({64}).eps(1e-5));
  {
    torch::NoGradGuard no_grad;
    module->weight.normal_();
    module->bias.normal_();
  }
  const auto x = torch::randn({5, 7, 64}) * 3 + 1;
  EXPECT_EQ(layer_norm_path(x, module->weight), "ATen");
  EXPECT_TRUE(torch::equal(layer_norm(x, module->weight, module->bias, 1e-5), module(x)));
}

// The CUDA kernels against float64 autograd through torch::layer_norm, for the widths they are
// built for, with float32 output and under bf16 autocast (bf16 output, bf16 incoming gradient).
// Tolerances: float32 output 2e-5 absolute (values of order 5); bf16 output one rounding to bf16
// (relative error at most 2^-8, bf16 having 8 significant bits) plus that; input gradient 1e-4 relative to its largest
// element, parameter gradients (sums over 333 rows) 1e-4 relative: float32 arithmetic on exactly the reference's
// inputs.
TEST(LayerNorm, CudaKernelsEqualFloat64LayerNormForEachWidthWithAndWithoutAutocast) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device (runs in bench/run.sh)";
  torch::manual_seed(42);
  const torch::Device cuda(torch::kCUDA);
  for (const std::int64_t width : {256, 768, 1600}) {
    for (const bool autocast : {false, true}) {
      const std::string what = "width " + std::to_string(width) + (autocast ? ", bf16 autocast" : ", float32");
      const auto x0 = torch::randn({3, 111, width}) * 2 + 0.5;
      const auto w0 = torch::randn({width}), b0 = torch::randn({width});
      const auto dy0 = torch::randn({3, 111, width}).to(autocast ? torch::kBFloat16 : torch::kFloat);

      auto x64 = x0.to(torch::kDouble).requires_grad_(), w64 = w0.to(torch::kDouble).requires_grad_(),
           b64 = b0.to(torch::kDouble).requires_grad_();
      const auto y64 = torch::layer_norm(x64, {width}, w64, b64, 1e-5);
      y64.backward(dy0.to(torch::kDouble));

      auto x = x0.to(cuda).requires_grad_(), w = w0.to(cuda).requires_grad_(), b = b0.to(cuda).requires_grad_();
      ASSERT_EQ(layer_norm_path(x, w), "fused CUDA kernel") << what;
      torch::Tensor y;
      {
        AutocastRegion region(torch::kCUDA, autocast, torch::kBFloat16);
        y = layer_norm(x, w, b, 1e-5);
      }
      EXPECT_EQ(y.scalar_type(), autocast ? torch::kBFloat16 : torch::kFloat) << what;
      const double out_tolerance = autocast ? y64.abs().max().item<double>() / 256 + 2e-5 : 2e-5;
      EXPECT_LE(max_difference(y, y64), out_tolerance) << what;
      y.backward(dy0.to(cuda));
      EXPECT_LE(max_difference(x.grad(), x64.grad()), 1e-4 * x64.grad().abs().max().item<double>()) << what;
      EXPECT_LE(max_difference(w.grad(), w64.grad()), 1e-4 * w64.grad().abs().max().item<double>()) << what;
      EXPECT_LE(max_difference(b.grad(), b64.grad()), 1e-4 * b64.grad().abs().max().item<double>()) << what;

      // The parameter gradients are summed in a fixed order: a second backward gives the same bits.
      auto x2 = x0.to(cuda).requires_grad_(), w2 = w0.to(cuda).requires_grad_(), b2 = b0.to(cuda).requires_grad_();
      {
        AutocastRegion region(torch::kCUDA, autocast, torch::kBFloat16);
        layer_norm(x2, w2, b2, 1e-5).backward(dy0.to(cuda));
      }
      EXPECT_TRUE(torch::equal(w2.grad(), w.grad())) << what << ": weight gradient not deterministic";
      EXPECT_TRUE(torch::equal(x2.grad(), x.grad())) << what;
    }
  }
  // A width without a kernel takes ATen's path, and says so.
  const auto odd = torch::randn({4, 96}, torch::TensorOptions(cuda));
  EXPECT_EQ(layer_norm_path(odd, torch::ones({96}, torch::TensorOptions(cuda))), "ATen");
}

}  // namespace
}  // namespace aios
