#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/nn/functional/loss.h>

#include <cmath>
#include <limits>

#include "kernels/fused_classifier.h"
#include "memory/mixed_precision.h"

namespace aios {
namespace {

namespace F = torch::nn::functional;

// The loss and d(Σ loss)/d(logits) by autograd through PyTorch's own cross-entropy, in float64.
std::pair<torch::Tensor, torch::Tensor> reference(const torch::Tensor& logits, const torch::Tensor& targets) {
  auto x = logits.to(torch::kCPU, torch::kDouble).requires_grad_();
  const auto losses = F::cross_entropy(x, targets.cpu(), F::CrossEntropyFuncOptions().reduction(torch::kNone));
  losses.sum().backward();
  return {losses.detach(), x.grad()};
}

double max_difference(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kCPU, torch::kDouble) - b.to(torch::kCPU, torch::kDouble)).abs().max().item<double>();
}

TEST(FusedClassifier, AtenRowsEqualPyTorchsCrossEntropyAndItsGradient) {
  torch::manual_seed(31);
  for (const auto type : {torch::kDouble, torch::kFloat}) {
    const auto logits0 = (torch::randn({37, 501}) * 4).to(type);
    const auto targets = torch::randint(0, 501, {37}, torch::kLong);
    const auto [losses_ref, grad_ref] = reference(logits0, targets);
    auto logits = logits0.clone();
    EXPECT_EQ(cross_entropy_path(logits), "ATen ops");
    const auto losses = cross_entropy_rows_(logits, targets, /*write_gradient=*/true);
    const double tolerance = type == torch::kDouble ? 1e-12 : 1e-5;
    EXPECT_LE(max_difference(losses, losses_ref), tolerance);
    EXPECT_LE(max_difference(logits, grad_ref), tolerance);
    auto untouched = logits0.clone();
    cross_entropy_rows_(untouched, targets, /*write_gradient=*/false);
    EXPECT_TRUE(torch::equal(untouched, logits0)) << "without the gradient the logits stay as given";
  }
}

// The head with its weight padded by zero rows (as on CUDA, to a multiple of 64) gives the loss and
// gradients of the unpadded head: float64 on the CPU, whole and in chunks, to rounding.
TEST(FusedClassifier, PaddedVocabularyGivesTheUnpaddedLossAndGradients) {
  torch::manual_seed(35);
  const std::int64_t tokens = 45, width = 24, vocab = 501;
  const auto hidden0 = torch::randn({tokens, width}, torch::kDouble);
  const auto weight0 = torch::randn({vocab, width}, torch::kDouble) * 0.1;
  const auto targets = torch::randint(0, vocab, {tokens}, torch::kLong);
  auto run = [&](std::int64_t chunk, std::int64_t multiple) {
    auto h = hidden0.clone().requires_grad_(), w = weight0.clone().requires_grad_();
    auto loss = fused_classifier_loss_sum(h, w, targets, chunk, multiple);
    (loss * 0.5).backward();
    return std::vector<torch::Tensor>{loss.detach(), h.grad(), w.grad()};
  };
  for (const std::int64_t chunk : {tokens, std::int64_t{16}}) {
    const auto plain = run(chunk, 1), padded = run(chunk, 64);
    ASSERT_EQ(padded[2].sizes(), weight0.sizes()) << "the weight gradient has the weight's rows";
    for (std::size_t i = 0; i < 3; ++i) {
      EXPECT_LE(max_difference(padded[i], plain[i]), 1e-12) << "chunk " << chunk << ", quantity " << i;
    }
  }
}

// The CUDA kernel against float64 autograd, for each logit type, for vocabularies that take the
// 16-byte path (50304), the scalar path (50257, 3001, contiguous rows of an odd length), and rows
// that are views into a tensor padded to a multiple of 64 columns (16-byte packs, then a scalar
// tail for 50257 and 3001), as the classifier's logits are. Tolerances: the loss in float32 (1e-4 absolute on losses
// near 11); the gradient rounded once to the logit type (half an ulp of values ≤ 1: 2^-9 for bf16, 2^-12 for fp16) plus
// float32 error.
TEST(FusedClassifier, CudaKernelEqualsFloat64CrossEntropyForEachTypeAndLayout) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device (runs in bench/run.sh)";
  torch::manual_seed(32);
  const torch::Device cuda(torch::kCUDA);
  const std::vector<std::pair<torch::ScalarType, double>> types = {
      {torch::kFloat, 1e-6}, {torch::kBFloat16, 1.0 / 512 + 1e-6}, {torch::kHalf, 1.0 / 4096 + 1e-6}};
  for (const auto& [type, gradient_tolerance] : types) {
    for (const std::int64_t vocab : {50304, 50257, 3001}) {
      for (const bool view : {false, true}) {
        const std::int64_t rows = 96;
        const std::int64_t width = view ? (vocab + 64) / 64 * 64 : vocab, beside_width = width - vocab;
        const auto wide = (torch::randn({rows, width}) * 3).to(cuda, type);
        auto logits = view ? wide.narrow(1, 0, vocab) : wide;
        auto targets = torch::randint(0, vocab, {rows}, torch::kLong);
        targets[0] = 0, targets[1] = vocab - 1;
        const auto [losses_ref, grad_ref] = reference(logits, targets);
        const auto beside = view ? wide.narrow(1, vocab, beside_width).clone() : torch::Tensor();
        ASSERT_EQ(cross_entropy_path(logits), "fused CUDA kernel");
        const auto losses = cross_entropy_rows_(logits, targets.to(cuda), /*write_gradient=*/true);
        const std::string what = std::string(c10::toString(type)) + " vocab " + std::to_string(vocab) +
                                 (view ? " (rows of a wider tensor)" : "");
        EXPECT_EQ(losses.scalar_type(), torch::kFloat) << what;
        EXPECT_LE(max_difference(losses, losses_ref), 1e-4) << what;
        EXPECT_LE(max_difference(logits, grad_ref), gradient_tolerance) << what;
        if (view) {
          EXPECT_TRUE(torch::equal(wide.narrow(1, vocab, beside_width).cpu(), beside.cpu()))
              << what << ": columns beside the rows";
        }
      }
    }
  }
}

TEST(FusedClassifier, CudaKernelWithoutGradientLeavesLogitsAndPropagatesNaN) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device (runs in bench/run.sh)";
  torch::manual_seed(33);
  const torch::Device cuda(torch::kCUDA);
  auto logits = torch::randn({8, 1024}).to(cuda, torch::kBFloat16);
  logits[3][17] = std::numeric_limits<float>::quiet_NaN();
  const auto before = logits.clone();
  const auto targets = torch::randint(0, 1024, {8}, torch::kLong);
  const auto losses = cross_entropy_rows_(logits, targets.to(cuda), /*write_gradient=*/false).cpu();
  // Rows without the NaN are bit-identical (row 3 is compared apart: NaN equals nothing).
  EXPECT_TRUE(torch::equal(torch::cat({logits.narrow(0, 0, 3), logits.narrow(0, 4, 4)}).cpu(),
                           torch::cat({before.narrow(0, 0, 3), before.narrow(0, 4, 4)}).cpu()));
  EXPECT_TRUE(std::isnan(losses[3].item<float>())) << "a NaN logit makes its row's loss NaN";
  for (int r : {0, 1, 2, 4, 5, 6, 7}) EXPECT_TRUE(std::isfinite(losses[r].item<float>())) << r;
}

// The whole head (matmul under bf16 autocast, kernel, gradients through the head) against float64
// autograd: as close as PyTorch's own float32 cross-entropy over the same bf16 logits.
TEST(FusedClassifier, CudaHeadUnderAutocastIsAsCloseToFloat64AsPyTorchsCrossEntropy) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device (runs in bench/run.sh)";
  torch::manual_seed(34);
  const std::int64_t tokens = 1024, width = 64, vocab = 5000;
  const auto hidden0 = torch::randn({tokens, width}, torch::kDouble);
  const auto weight0 = torch::randn({vocab, width}, torch::kDouble) * 0.05;
  const auto targets = torch::randint(0, vocab, {tokens}, torch::kLong);
  auto h64 = hidden0.clone().requires_grad_(), w64 = weight0.clone().requires_grad_();
  const auto loss64 =
      F::cross_entropy(torch::matmul(h64, w64.t()), targets, F::CrossEntropyFuncOptions().reduction(torch::kSum));
  loss64.backward();
  const torch::Device cuda(torch::kCUDA);
  const auto cuda_targets = targets.to(cuda);
  auto relative = [](const torch::Tensor& x, const torch::Tensor& ref) {
    return ((x.cpu().to(torch::kDouble) - ref).norm() / ref.norm()).item<double>();
  };
  auto run = [&](bool fused) {
    auto h = hidden0.to(cuda, torch::kFloat).requires_grad_(), w = weight0.to(cuda, torch::kFloat).requires_grad_();
    torch::Tensor loss;
    {
      AutocastRegion autocast(torch::kCUDA, true, torch::kBFloat16);
      loss = fused ? fused_classifier_loss_sum(h, w, cuda_targets, tokens)
                   : F::cross_entropy(at::linear(h, w).to(torch::kFloat), cuda_targets,
                                      F::CrossEntropyFuncOptions().reduction(torch::kSum));
    }
    (loss * 0.25).backward();  // a non-unit incoming gradient
    return std::vector<double>{std::abs(loss.item<double>() - loss64.item<double>()) / loss64.item<double>(),
                               relative(h.grad(), h64.grad() * 0.25), relative(w.grad(), w64.grad() * 0.25)};
  };
  const auto aten = run(false), fused = run(true);
  EXPECT_LT(aten[2], 2e-2);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_LE(fused[i], 1.5 * aten[i] + 1e-6) << "quantity " << i << " (loss, hidden grad, weight grad)";
  }
}

}  // namespace
}  // namespace aios
