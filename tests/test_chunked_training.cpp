// Long windows in chunks: rotary positions against an explicit reference, chunk-by-chunk forward
// against the whole window, exact mode's loss and gradients against whole-window training (W = 4C
// and a ragged W = 7C - 2, learned and rotary positions), truncated mode with memory W against
// the whole-window loss, and a training run in exact mode against the plain one.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <torch/autograd.h>
#include <torch/cuda.h>

#include <cmath>

#include "memory/activation_checkpoint.h"
#include "memory/chunked_training.h"
#include "memory/mixed_precision.h"
#include "model/causal_attention.h"
#include "model/rotary.h"
#include "trainer_fixture.h"

namespace aios {
namespace {

TEST(Rope, MatchesTheRotationFormulaAndDependsOnlyOnRelativePosition) {
  torch::manual_seed(0);
  const auto x = torch::randn({1, 2, 5, 8}, torch::kDouble);
  const auto rotated = apply_rotary(x, 3, 10000.0);
  // Explicit reference: pair (i, i + 4) of the token at position p turns by p · 10000^(-2i/8).
  for (int t = 0; t < 5; ++t) {
    for (int i = 0; i < 4; ++i) {
      const double angle = (3 + t) * std::pow(10000.0, -2.0 * i / 8.0);
      for (int h = 0; h < 2; ++h) {
        const double a = x[0][h][t][i].item<double>(), b = x[0][h][t][i + 4].item<double>();
        EXPECT_NEAR(rotated[0][h][t][i].item<double>(), a * std::cos(angle) - b * std::sin(angle), 1e-12);
        EXPECT_NEAR(rotated[0][h][t][i + 4].item<double>(), b * std::cos(angle) + a * std::sin(angle), 1e-12);
      }
    }
  }
  // q·k depends on the distance only: shifting both by 100 positions changes nothing.
  const auto q = torch::randn({1, 1, 1, 8}, torch::kDouble), k = torch::randn({1, 1, 1, 8}, torch::kDouble);
  const double near = (apply_rotary(q, 7, 1e4) * apply_rotary(k, 2, 1e4)).sum().item<double>();
  const double far = (apply_rotary(q, 107, 1e4) * apply_rotary(k, 102, 1e4)).sum().item<double>();
  EXPECT_NEAR(near, far, 1e-10);
}

TEST(Rope, SharedTableFollowsThePositionsAndRoundsAsTheTwoHalvesForm) {
  torch::manual_seed(1);
  RotaryTable table(10000.0);
  const auto x = torch::randn({2, 1, 3, 6, 8}, torch::kDouble);  // queries and keys together
  // A table reused across positions, lengths and types gives what a fresh one gives.
  for (const std::int64_t start : {3, 40, 3}) {
    EXPECT_TRUE(at::equal(table.rotate(x, start), apply_rotary(x, start, 10000.0))) << start;
  }
  EXPECT_TRUE(at::equal(table.rotate(x.narrow(-2, 0, 4), 3), apply_rotary(x.narrow(-2, 0, 4), 3, 10000.0)));
  // In bf16, bit for bit the explicit two-halves form with tables rounded to bf16.
  const auto h = x.to(at::kBFloat16);
  const auto angles =
      at::outer(at::arange(40, 46, torch::kDouble), at::pow(10000.0, -at::arange(0, 4, torch::kDouble) * (2.0 / 8.0)));
  const auto cos = angles.cos().to(at::kBFloat16), sin = angles.sin().to(at::kBFloat16);
  const auto x1 = h.narrow(-1, 0, 4), x2 = h.narrow(-1, 4, 4);
  const auto expected = at::cat({x1 * cos - x2 * sin, x2 * cos + x1 * sin}, -1);
  const auto rotated = table.rotate(h, 40);
  EXPECT_EQ(rotated.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(at::equal(rotated, expected));
  // Tables made under InferenceMode are not reused where autograd must save them.
  {
    c10::InferenceMode inference;
    table.rotate(x, 7);
  }
  const auto leaf = x.clone().requires_grad_(true);
  table.rotate(leaf, 7).sum().backward();
  EXPECT_TRUE(leaf.grad().defined());
}

GptConfig small(const std::string& position) {
  GptConfig c = gpt_preset("tiny");
  c.n_layer = 2, c.n_head = 2, c.n_embd = 32, c.vocab_size = 64, c.max_positions = 64;
  c.position = *enum_from_string<PositionEncoding>(position);
  return c;
}

// Loss and gradients of whole-window training.
std::pair<double, std::vector<at::Tensor>> whole_window(Gpt& model, const at::Tensor& tokens,
                                                        const at::Tensor& targets) {
  for (auto& p : model->parameters()) p.mutable_grad() = at::Tensor();
  const auto loss = model->loss_sum(tokens, targets);
  loss.backward();
  std::vector<at::Tensor> grads;
  for (auto& p : model->parameters()) grads.push_back(p.grad().clone());
  return {loss.item<double>(), grads};
}

std::pair<double, std::vector<at::Tensor>> chunked(Gpt& model, const at::Tensor& tokens, const at::Tensor& targets,
                                                   const ChunkedTraining& options) {
  for (auto& p : model->parameters()) p.mutable_grad() = at::Tensor();
  const auto loss = chunked_forward_backward(
      model, tokens, targets, options, MixedPrecision{}, [](const at::Tensor& l) { return l; }, [] {});
  std::vector<at::Tensor> grads;
  for (auto& p : model->parameters()) grads.push_back(p.grad().clone());
  return {loss.item<double>(), grads};
}

double worst_relative(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, ((a[i] - b[i]).abs().max() / (b[i].abs().max() + 1e-12)).item<double>());
  }
  return worst;
}

TEST(ChunkedTraining, ExactModeEqualsWholeWindowTrainingWithAndWithoutCheckpointing) {
  for (const std::string position : {"learned", "rope"}) {
    // With C = 8: 4C, a ragged 3C + 2 and one chunk; with C = 4: 8C, 7C - 2 and 2C.
    for (std::int64_t window : {32, 26, 8}) {
      for (std::int64_t chunk : {8, 4}) {
        for (std::int64_t checkpoint_every : {0, 1}) {
          torch::manual_seed(1);
          Gpt model(small(position));
          model->to(torch::kDouble);
          const auto tokens = torch::randint(0, 64, {2, window}, torch::kLong);
          const auto targets = torch::randint(0, 64, {2, window}, torch::kLong);
          const auto [loss, grads] = whole_window(model, tokens, targets);
          apply_activation_checkpointing(model, checkpoint_every);
          const auto [chunk_loss, chunk_grads] = chunked(model, tokens, targets, {ChunkMode::kExact, chunk, 0});
          const std::string what = position + " W " + std::to_string(window) + " C " + std::to_string(chunk) +
                                   " checkpoint every " + std::to_string(checkpoint_every);
          EXPECT_NEAR(chunk_loss, loss, 1e-9 * loss) << what;
          EXPECT_LT(worst_relative(chunk_grads, grads), 1e-9) << what;
        }
      }
    }
  }
}

TEST(ChunkedTraining, ExactModeUnderBf16IsAsCloseToFp32AsTheWholeWindowUnderBf16) {
  // 128 chunks: the first chunk's keys/values collect gradient terms from 127 later chunks, summed
  // in the keys' type (bf16 here). Exact mode must stay as close to the fp32 gradients as
  // whole-window bf16 training (measured: 0.0096 against 0.0075 worst relative; with fp32 sums
  // 0.0091, not worth their memory).
  torch::manual_seed(4);
  Gpt model(small("rope"));
  const auto tokens = torch::randint(0, 64, {2, 512}, torch::kLong),
             targets = torch::randint(0, 64, {2, 512}, torch::kLong);
  const auto reference = whole_window(model, tokens, targets).second;  // fp32, no autocast
  std::vector<at::Tensor> whole_bf16;
  {
    for (auto& p : model->parameters()) p.mutable_grad() = at::Tensor();
    at::Tensor loss;
    {
      AutocastRegion autocast(at::kCPU, true, at::kBFloat16);
      loss = model->loss_sum(tokens, targets);
    }
    loss.backward();
    for (auto& p : model->parameters()) whole_bf16.push_back(p.grad().clone());
  }
  for (auto& p : model->parameters()) p.mutable_grad() = at::Tensor();
  chunked_forward_backward(
      model, tokens, targets, {ChunkMode::kExact, 4, 0}, MixedPrecision{true, at::kBFloat16},
      [](const at::Tensor& l) { return l; }, [] {});
  std::vector<at::Tensor> exact_bf16;
  for (auto& p : model->parameters()) exact_bf16.push_back(p.grad().clone());
  const double whole_error = worst_relative(whole_bf16, reference);
  const double exact_error = worst_relative(exact_bf16, reference);
  EXPECT_GT(whole_error, 0.0);  // bf16 really ran
  EXPECT_LT(exact_error, 2.0 * whole_error) << "exact " << exact_error << ", whole " << whole_error;
}

// A float64 rotary model with dropout 0.2 and two windows of 24 tokens, drawn from `seed`.
struct DropoutCase {
  Gpt model;
  at::Tensor tokens, targets;
};

DropoutCase dropout_case(std::uint64_t seed) {
  torch::manual_seed(seed);
  GptConfig c = small("rope");
  c.dropout = 0.2;
  Gpt model(c);
  model->to(torch::kDouble);
  const auto tokens = torch::randint(0, 64, {2, 24}, torch::kLong);
  return {model, tokens, torch::randint(0, 64, {2, 24}, torch::kLong)};
}

TEST(ChunkedTraining, ExactModeWithDropoutIsDeterministic) {
  auto [model, tokens, targets] = dropout_case(2);
  // Chunks draw their dropout masks in another order than the whole window, so the two cannot be
  // compared sample by sample (the next test compares their expectations); each chunk's
  // recomputation restores the RNG state of its first pass, and the run leaves the RNG where the
  // first pass left it: two runs from one seed agree exactly.
  torch::manual_seed(9);
  const auto first = chunked(model, tokens, targets, {ChunkMode::kExact, 8, 0});
  torch::manual_seed(9);
  const auto second = chunked(model, tokens, targets, {ChunkMode::kExact, 8, 0});
  EXPECT_EQ(first.first, second.first);
  EXPECT_EQ(worst_relative(first.second, second.second), 0.0);
  // A window of one chunk runs only once, with the whole window's masks, and leaves the generator
  // where whole-window training leaves it.
  torch::manual_seed(9);
  const auto whole = whole_window(model, tokens, targets);
  const auto after_whole = torch::rand({4}, torch::kDouble);
  torch::manual_seed(9);
  const auto one_chunk = chunked(model, tokens, targets, {ChunkMode::kExact, 24, 0});
  const auto after_one_chunk = torch::rand({4}, torch::kDouble);
  EXPECT_NEAR(one_chunk.first, whole.first, 1e-12 * whole.first);
  EXPECT_LT(worst_relative(one_chunk.second, whole.second), 1e-12);
  EXPECT_TRUE(at::equal(after_one_chunk, after_whole));
}

// With dropout, exact chunks and the whole window draw different masks, so single gradients differ;
// both must be samples of one distribution: the same expected gradient. Over K seeds each, the
// mean gradients' difference is compared with its standard error, element by element: the mean
// squared z-score is about 1 when the expectations agree. Masks replayed wrongly in a chunk's
// recomputation, or one mask reused across chunks, would move it (the test's own check: the
// dropout-free gradient, a different expectation, is told apart).
TEST(ChunkedTraining, ExactModeWithDropoutHasTheWholeWindowsExpectedGradient) {
  auto [model, tokens, targets] = dropout_case(3);
  const auto flat = [](const std::vector<at::Tensor>& grads) {
    std::vector<at::Tensor> parts;
    for (const auto& g : grads) parts.push_back(g.reshape({-1}));
    return at::cat(parts);
  };
  constexpr int kSamples = 400;
  at::Tensor sum_whole, squares_whole, sum_chunked, squares_chunked;
  for (int k = 0; k < kSamples; ++k) {
    torch::manual_seed(1000 + k);
    const auto w = flat(whole_window(model, tokens, targets).second);
    torch::manual_seed(500000 + k);
    const auto x = flat(chunked(model, tokens, targets, {ChunkMode::kExact, 8, 0}).second);
    sum_whole = k == 0 ? w.clone() : sum_whole + w;
    squares_whole = k == 0 ? w * w : squares_whole + w * w;
    sum_chunked = k == 0 ? x.clone() : sum_chunked + x;
    squares_chunked = k == 0 ? x * x : squares_chunked + x * x;
  }
  const double n = kSamples;
  const auto mean_whole = sum_whole / n, mean_chunked = sum_chunked / n;
  const auto variance_whole = (squares_whole / n - mean_whole * mean_whole) * (n / (n - 1));
  const auto variance_chunked = (squares_chunked / n - mean_chunked * mean_chunked) * (n / (n - 1));
  const auto error = ((variance_whole + variance_chunked) / n).sqrt();
  const auto varies = error > 1e-12;  // elements dropout does not reach have no spread
  ASSERT_GT(varies.sum().item<std::int64_t>(), 1000);
  const double z2 = ((mean_chunked - mean_whole) / error).masked_select(varies).pow(2).mean().item<double>();
  EXPECT_LT(z2, 1.5) << "mean squared z-score of exact chunks' mean gradient against the whole window's";

  model->eval();  // no dropout
  const auto plain = flat(whole_window(model, tokens, targets).second);
  const auto plain_error = (variance_chunked / n).sqrt();
  const double plain_z2 = ((mean_chunked - plain) / plain_error).masked_select(varies).pow(2).mean().item<double>();
  EXPECT_GT(plain_z2, 3.0) << "the test cannot tell the dropout-free gradient from the expected one";
  std::printf("mean squared z: chunks against the whole window %.3f, against no dropout %.3f\n", z2, plain_z2);
}

TEST(ChunkedTraining, TruncatedModeWithWholeMemoryHasTheWholeWindowLoss) {
  torch::manual_seed(3);
  Gpt model(small("rope"));
  model->to(torch::kDouble);
  const auto tokens = torch::randint(0, 64, {2, 30}, torch::kLong),
             targets = torch::randint(0, 64, {2, 30}, torch::kLong);
  const auto [loss, grads] = whole_window(model, tokens, targets);
  const auto [truncated_loss, truncated_grads] = chunked(model, tokens, targets, {ChunkMode::kTruncated, 8, 30});
  EXPECT_NEAR(truncated_loss, loss, 1e-9 * loss);
  // Gradients do not cross chunk boundaries, so they differ from the whole window's.
  EXPECT_GT(worst_relative(truncated_grads, grads), 1e-3);
  // A short memory changes the loss too (chunks see fewer tokens).
  const auto [short_loss, short_grads] = chunked(model, tokens, targets, {ChunkMode::kTruncated, 8, 4});
  EXPECT_GT(std::abs(short_loss - loss), 1e-6);
}

TEST(ChunkedTraining, TruncatedModeGivesTheSameGradientsWithCheckpointing) {
  // Checkpointed chunks read detached keys/values of earlier chunks (no gradient for them).
  torch::manual_seed(5);
  Gpt model(small("rope"));
  model->to(torch::kDouble);
  const auto tokens = torch::randint(0, 64, {2, 30}, torch::kLong),
             targets = torch::randint(0, 64, {2, 30}, torch::kLong);
  for (std::int64_t memory : {30, 4}) {
    apply_activation_checkpointing(model, 0);
    const auto [loss, grads] = chunked(model, tokens, targets, {ChunkMode::kTruncated, 8, memory});
    apply_activation_checkpointing(model, 1);
    const auto [checkpointed_loss, checkpointed_grads] =
        chunked(model, tokens, targets, {ChunkMode::kTruncated, 8, memory});
    EXPECT_NEAR(checkpointed_loss, loss, 1e-12 * loss) << "memory " << memory;
    EXPECT_LT(worst_relative(checkpointed_grads, grads), 1e-9) << "memory " << memory;
  }
}

// Attention of a chunk over earlier keys plus its own, against explicit softmax(q·kᵀ/√d + mask)·v
// in float64 with the lower-right mask written out, outputs and gradients.
void expect_lower_right_causal_attention(const c10::Device& device, at::ScalarType dtype, double tolerance,
                                         const std::string& expected_kernel) {
  torch::manual_seed(6);
  const std::int64_t past = 40, time = 24, dim = 64;
  const auto options = at::TensorOptions(device).dtype(dtype);
  const auto q = torch::randn({2, 3, time, dim}, options).requires_grad_(true);
  const auto k = torch::randn({2, 3, past + time, dim}, options).requires_grad_(true);
  const auto v = torch::randn({2, 3, past + time, dim}, options).requires_grad_(true);
  EXPECT_EQ(causal_attention_after_past_kernel(q, k, 0.0), expected_kernel);
  const auto y = causal_attention_after_past(q, k, v, 0.0);
  const auto seed = torch::randn_like(y);
  const auto grads = torch::autograd::grad({y}, {q, k, v}, {seed});

  const auto q64 = q.detach().to(at::kCPU, at::kDouble).requires_grad_(true);
  const auto k64 = k.detach().to(at::kCPU, at::kDouble).requires_grad_(true);
  const auto v64 = v.detach().to(at::kCPU, at::kDouble).requires_grad_(true);
  auto scores = at::matmul(q64, k64.transpose(-2, -1)) / std::sqrt(static_cast<double>(dim));
  for (std::int64_t i = 0; i < time; ++i) {  // query i sits at position past + i
    scores.select(2, i).narrow(-1, past + i + 1, time - i - 1).fill_(-INFINITY);
  }
  const auto y64 = at::matmul(at::softmax(scores, -1), v64);
  const auto grads64 = torch::autograd::grad({y64}, {q64, k64, v64}, {seed.to(at::kCPU, at::kDouble)});
  const auto relative = [](const at::Tensor& a, const at::Tensor& b) {
    return ((a.to(at::kCPU, at::kDouble) - b).abs().max() / b.abs().max()).item<double>();
  };
  EXPECT_LT(relative(y, y64), tolerance) << expected_kernel;
  for (int i = 0; i < 3; ++i) EXPECT_LT(relative(grads[i], grads64[i]), tolerance) << "gradient " << i;
}

TEST(CausalAttentionAfterPast, AlignsTheCausalMaskToTheLowerRight) {
  expect_lower_right_causal_attention(c10::Device(c10::kCPU), at::kDouble, 1e-12,
                                      "SDPA with an explicit causal mask (no flash)");
}

TEST(CausalAttentionAfterPast, CudaRunsFlashWithTheLowerRightMask) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device (runs in bench/run.sh)";
  // bf16 inputs: ATen's flash kernel, called directly with is_causal (bf16 rounding: 2e-2).
  expect_lower_right_causal_attention(c10::Device(c10::kCUDA, 0), at::kBFloat16, 2e-2, "flash (lower-right causal)");
  // fp32: flash refuses, the explicit mask runs.
  expect_lower_right_causal_attention(c10::Device(c10::kCUDA, 0), at::kFloat, 1e-4,
                                      "SDPA with an explicit causal mask (no flash)");
}

// The trainer runs below: rotary positions, float64 (so only summation order differs), 8-token chunks.
TrainOptions rope_chunks(TrainOptions o, bool chunked_run) {
  o.model.dtype = ModelDtype::kFloat64;
  o.model.position = PositionEncoding::kRope;
  o.memory.chunked_training = chunked_run;
  o.memory.chunk_size = chunked_run ? 8 : 0;
  o.run.steps = 3;
  return o;
}

TEST_F(TrainerTest, ExactChunkedTrainingLeavesTheTrainingUnchanged) {
  std::vector<std::vector<torch::Tensor>> results;
  for (bool chunked_run : {false, true}) {
    auto o = rope_chunks(options(chunked_run ? "chunked" : "whole"), chunked_run);
    o.data.window_size = 30;
    o.data.gradient_accumulation_steps = 2;
    o.run.log_file = dir_ / (chunked_run ? "chunked.jsonl" : "whole.jsonl");
    results.push_back(parameters_of(train(o).last_checkpoint, o));
    const auto attention = records_of(o.run.log_file, "config").at(0)["attention"];
    EXPECT_EQ(attention.contains("chunks_after_the_first"), chunked_run) << attention.dump();
  }
  EXPECT_LT(max_relative_difference(results[1], results[0]), 1e-9);
}

TEST_F(TrainerTest, OutOfMemoryAtMicroBatchOneHalvesTheChunkInExactMode) {
  std::vector<std::vector<torch::Tensor>> results;
  for (bool faulted : {false, true}) {
    auto o = rope_chunks(options(faulted ? "chunk-oom" : "chunk-plain"), true);
    o.data.window_size = 32;
    o.data.batch_size = 2;
    o.run.log_file = dir_ / (faulted ? "chunk-oom.jsonl" : "chunk-plain.jsonl");
    testing::ScopedEnv at(faulted ? "AIOS_FAULT_OOM_AT_STEP" : "AIOS_UNUSED", "2");
    testing::ScopedEnv times("AIOS_FAULT_OOM_TIMES", "3");
    const auto summary = train(o);
    if (faulted) {
      EXPECT_EQ(summary.batch_shrinks, 3);
      const auto events = records_of(o.run.log_file, "event");
      ASSERT_EQ(events.size(), 3u);
      EXPECT_EQ(events[0]["micro_batch"], 1);  // first the micro-batch, then the chunk
      EXPECT_EQ(events[1]["chunk"], 4);
      EXPECT_EQ(events[2]["chunk"], 2);
    }
    results.push_back(parameters_of(summary.last_checkpoint, o));
  }
  EXPECT_LT(max_relative_difference(results[1], results[0]), 1e-9);  // exact: the chunk size changes nothing
}

}  // namespace
}  // namespace aios
