#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/nn/functional/loss.h>

#include "memory/chunked_cross_entropy.h"
#include "memory/mixed_precision.h"

namespace aios {
namespace {

namespace F = torch::nn::functional;

TEST(ChunkedCrossEntropy, EqualsTheFullLogitsLossAndGradients) {
  torch::manual_seed(21);
  const auto hidden0 = torch::randn({77, 16});
  const auto weight0 = torch::randn({50, 16}) * 0.5;
  const auto targets = torch::randint(0, 50, {77}, torch::kLong);
  auto h_ref = hidden0.clone().requires_grad_(), w_ref = weight0.clone().requires_grad_();
  const auto reference =
      F::cross_entropy(torch::matmul(h_ref, w_ref.t()), targets, F::CrossEntropyFuncOptions().reduction(torch::kSum));
  (reference * 0.37).backward();  // a non-unit incoming gradient
  for (std::int64_t chunk : {1, 10, 76, 77, 1000}) {
    auto h = hidden0.clone().requires_grad_(), w = weight0.clone().requires_grad_();
    const auto loss = chunked_cross_entropy_sum(h, w, targets, chunk);
    (loss * 0.37).backward();
    // fp32, summation order only: the 1e-6 relative.
    EXPECT_NEAR(loss.item<double>(), reference.item<double>(), 1e-6 * reference.item<double>()) << chunk;
    EXPECT_LE((h.grad() - h_ref.grad()).abs().max().item<double>(), 1e-6 * h_ref.grad().abs().max().item<double>())
        << chunk;
    EXPECT_LE((w.grad() - w_ref.grad()).abs().max().item<double>(), 1e-6 * w_ref.grad().abs().max().item<double>())
        << chunk;
  }
}

TEST(ChunkedCrossEntropy, ModelLossAndGradientsAreUnchanged) {
  auto run = [](std::int64_t chunk) {
    torch::manual_seed(22);
    GptConfig c = gpt_preset("tiny");
    c.n_layer = 2, c.n_embd = 32, c.n_head = 2, c.vocab_size = 300, c.max_positions = 16;
    Gpt model(c);
    apply_chunked_loss(model, chunk);
    const auto tokens = torch::randint(0, 300, {3, 16}, torch::kLong);
    const auto targets = torch::randint(0, 300, {3, 16}, torch::kLong);
    auto loss = model->loss_sum(tokens, targets);
    loss.backward();
    std::vector<torch::Tensor> grads{loss.detach()};
    for (const auto& p : model->parameters()) grads.push_back(p.grad().clone());
    return grads;
  };
  const auto plain = run(0), chunked = run(5);
  for (std::size_t i = 0; i < plain.size(); ++i) {
    const double scale = plain[i].abs().max().item<double>();
    EXPECT_LE((plain[i] - chunked[i]).abs().max().item<double>(), 1e-6 * scale) << "tensor " << i;
  }
}

// Under bf16 autocast the chunks' weight-gradient products are summed in fp32 (cuBLAS writes them
// in fp32), so chunking adds no rounding the full-logits head does not have: against float64, the
// chunked gradients are within 1.5x of the full-logits path's error, even with one token per chunk
// (where rounding each chunk's product to bf16 would add one rounding per token).
TEST(ChunkedCrossEntropy, CudaBf16GradientsAreAsCloseToFloat64AsTheFullLogits) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device (runs in bench/run.sh)";
  torch::manual_seed(23);
  const std::int64_t tokens = 2048, width = 64, vocab = 3000;
  const auto hidden0 = torch::randn({tokens, width}, torch::kDouble);
  const auto weight0 = torch::randn({vocab, width}, torch::kDouble) * 0.02;
  const auto targets = torch::randint(0, 256, {tokens}, torch::kLong);  // most rows never a target
  auto h64 = hidden0.clone().requires_grad_(), w64 = weight0.clone().requires_grad_();
  F::cross_entropy(torch::matmul(h64, w64.t()), targets, F::CrossEntropyFuncOptions().reduction(torch::kSum))
      .backward();
  auto relative_error = [](const torch::Tensor& x, const torch::Tensor& reference) {
    return ((x.cpu().to(torch::kDouble) - reference).norm() / reference.norm()).item<double>();
  };
  const auto device = torch::Device(torch::kCUDA);
  const auto cuda_targets = targets.to(device);
  auto run = [&](std::int64_t chunk) {  // chunk 0: the full logits
    auto h = hidden0.to(device, torch::kFloat).requires_grad_(), w = weight0.to(device, torch::kFloat).requires_grad_();
    torch::Tensor loss;
    {
      AutocastRegion autocast(torch::kCUDA, true, torch::kBFloat16);
      loss = chunk > 0 ? chunked_cross_entropy_sum(h, w, cuda_targets, chunk)
                       : F::cross_entropy(at::linear(h, w).to(torch::kFloat), cuda_targets,
                                          F::CrossEntropyFuncOptions().reduction(torch::kSum));
    }
    loss.backward();
    return std::make_pair(relative_error(h.grad(), h64.grad()), relative_error(w.grad(), w64.grad()));
  };
  const auto full = run(0);
  EXPECT_LT(full.second, 1e-2);
  for (const std::int64_t chunk : {std::int64_t{1}, std::int64_t{64}, std::int64_t{500},
                                   tokens}) {  // tokens: one chunk, as the plain head on CUDA
    const auto chunked = run(chunk);
    EXPECT_LE(chunked.first, 1.5 * full.first + 1e-6) << "hidden gradient, chunk " << chunk;
    EXPECT_LE(chunked.second, 1.5 * full.second + 1e-6) << "weight gradient, chunk " << chunk;
  }
}

TEST(ChunkedCrossEntropy, DefaultChunkIsSizedToTheVocabulary) {
  EXPECT_EQ(default_loss_chunk_tokens(50257, 4), (256LL << 20) / (4 * 50257));
  EXPECT_EQ(default_loss_chunk_tokens(50257, 2), (256LL << 20) / (2 * 50257));  // bf16 logits: twice the tokens
  EXPECT_EQ(default_loss_chunk_tokens(10'000'000, 4), 128);
}

}  // namespace
}  // namespace aios
