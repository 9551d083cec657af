#include <gtest/gtest.h>
#include <torch/autograd.h>
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

// The stream functions against what they replace, on any device: returns the largest difference
// of the outputs and of every gradient, relative to the reference's largest element of each.
struct StreamCase {
  torch::Tensor x, branch, weight, bias, grad_stream, grad_normed;
};

StreamCase stream_case(std::int64_t width, torch::ScalarType branch_type) {
  torch::manual_seed(43);
  return {torch::randn({2, 77, width}) * 2 + 0.5,
          torch::randn({2, 77, width}).to(branch_type),
          torch::randn({width}),
          torch::randn({width}),
          torch::randn({2, 77, width}),
          torch::randn({2, 77, width}).to(branch_type)};
}

struct StreamResult {
  torch::Tensor stream, normed, grad_x, grad_branch, grad_weight, grad_bias;
};

// with_branch: add_and_layer_norm(x, branch), else layer_norm_of_stream(x). fused: through the
// functions under test, else the plain add and layer_norm (autograd sums the stream's gradients).
StreamResult run_stream(const StreamCase& c, const torch::TensorOptions& options, bool with_branch, bool fused,
                        bool autocast) {
  auto x = c.x.to(options).requires_grad_(), w = c.weight.to(options).requires_grad_(),
       b = c.bias.to(options).requires_grad_();
  // The branch keeps its type (the matmul's) except in the float64 reference.
  auto branch =
      (options.dtype() == torch::kDouble ? c.branch.to(options) : c.branch.to(options.device())).requires_grad_();
  NormedStream out;
  {
    AutocastRegion region(options.device().type(), autocast, torch::kBFloat16);
    if (fused) {
      out = with_branch ? add_and_layer_norm(x, branch, w, b, 1e-5) : layer_norm_of_stream(x, w, b, 1e-5);
    } else {
      out.stream = with_branch ? x + branch : x;
      out.normed = torch::layer_norm(out.stream, {x.size(-1)}, w, b, 1e-5);
    }
  }
  const auto grad_normed = c.grad_normed.to(options.device(), out.normed.scalar_type());
  torch::autograd::backward({out.stream, out.normed}, {c.grad_stream.to(options), grad_normed});
  return {out.stream, out.normed, x.grad(), with_branch ? branch.grad() : torch::Tensor(), w.grad(), b.grad()};
}

double relative_difference(const torch::Tensor& a, const torch::Tensor& reference) {
  return max_difference(a, reference) / reference.abs().max().item<double>();
}

TEST(LayerNorm, OnTheCpuTheStreamFunctionsAreTheAddAndLayerNormBitForBit) {
  const auto c = stream_case(64, torch::kFloat);
  for (const bool with_branch : {false, true}) {
    const auto fused = run_stream(c, torch::kFloat, with_branch, true, false);
    const auto plain = run_stream(c, torch::kFloat, with_branch, false, false);
    EXPECT_TRUE(torch::equal(fused.stream, plain.stream));
    EXPECT_TRUE(torch::equal(fused.normed, plain.normed));
    EXPECT_TRUE(torch::equal(fused.grad_x, plain.grad_x));
    EXPECT_TRUE(torch::equal(fused.grad_weight, plain.grad_weight));
    if (with_branch) EXPECT_TRUE(torch::equal(fused.grad_branch, plain.grad_branch));
  }
}

// The fused kernels (the add in the forward, the stream's gradient in the backward) against float64
// autograd through the plain add and layer_norm. Tolerances as for the plain kernels above; the sum
// x + branch is float32 arithmetic on the reference's inputs (relative 1e-6); the branch's
// gradient under autocast is x's rounded to bf16 (relative 2^-8 of its largest element).
TEST(LayerNorm, CudaStreamKernelsEqualFloat64AddAndLayerNorm) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device (runs in bench/run.sh)";
  const auto cuda = torch::TensorOptions(torch::kCUDA);
  for (const std::int64_t width : {768, 1600}) {
    for (const bool autocast : {false, true}) {
      const auto branch_type = autocast ? torch::kBFloat16 : torch::kFloat;
      const auto c = stream_case(width, branch_type);
      for (const bool with_branch : {false, true}) {
        const std::string what = std::string(with_branch ? "add_and_layer_norm" : "layer_norm_of_stream") + ", width " +
                                 std::to_string(width) + (autocast ? ", bf16 autocast" : ", float32");
        const auto got = run_stream(c, cuda, with_branch, true, autocast);
        const auto want = run_stream(c, torch::kDouble, with_branch, false, false);
        ASSERT_NE(got.normed.grad_fn(), nullptr);
        const std::string node = got.normed.grad_fn()->name();
        EXPECT_NE(node.find(with_branch ? "FusedAddLayerNorm" : "FusedLayerNormOfStream"), std::string::npos)
            << what << ": " << node;
        EXPECT_EQ(got.stream.scalar_type(), torch::kFloat) << what;
        EXPECT_EQ(got.normed.scalar_type(), branch_type) << what;
        EXPECT_LE(relative_difference(got.stream, want.stream), 1e-6) << what;
        EXPECT_LE(max_difference(got.normed, want.normed),
                  autocast ? want.normed.abs().max().item<double>() / 256 + 2e-5 : 2e-5)
            << what;
        EXPECT_LE(relative_difference(got.grad_x, want.grad_x), 1e-4) << what;
        EXPECT_LE(relative_difference(got.grad_weight, want.grad_weight), 1e-4) << what;
        EXPECT_LE(relative_difference(got.grad_bias, want.grad_bias), 1e-4) << what;
        if (with_branch) {
          EXPECT_EQ(got.grad_branch.scalar_type(), branch_type) << what;
          EXPECT_LE(relative_difference(got.grad_branch, want.grad_branch), autocast ? 1.0 / 256 + 1e-4 : 1e-4) << what;
        }
      }
    }
  }
}

}  // namespace
}  // namespace aios
