// AMP: the loss scaler's skip/backoff/growth rules, fp16 training that skips exactly the step with
// an injected inf gradient, bf16 training that stays within a stated bound of fp32, and
// activation checkpointing that recomputes under the forward's autocast state.
#include <ATen/ATen.h>

#include "memory/activation_checkpoint.h"
#include "memory/mixed_precision.h"
#include "optim/loss_scaler.h"
#include "trainer_fixture.h"

namespace aios {
namespace {

TEST(LossScaler, SkipsOnInfHalvesAndGrowsAfterTheInterval) {
  LossScaler scaler(true, at::kCPU, {1024.0, 2.0, 0.5, 2});
  EXPECT_DOUBLE_EQ(scaler.scale(at::ones({})).item<double>(), 1024.0);
  auto a = at::full({3}, 2048.0), b = at::full({2}, 512.0);
  scaler.unscale({a, b});
  EXPECT_FALSE(scaler.found_non_finite());
  EXPECT_TRUE(at::allclose(a, at::full({3}, 2.0)));
  EXPECT_TRUE(at::allclose(b, at::full({2}, 0.5)));

  b[1] = std::numeric_limits<float>::infinity();
  scaler.unscale({a, b});
  EXPECT_TRUE(scaler.found_non_finite());
  scaler.update(scaler.found_non_finite());
  EXPECT_DOUBLE_EQ(scaler.current_scale(), 512.0);  // backoff

  for (int clean = 0; clean < 2; ++clean) {
    scaler.unscale({at::ones({2})});
    EXPECT_FALSE(scaler.found_non_finite());
    scaler.update(scaler.found_non_finite());
  }
  EXPECT_DOUBLE_EQ(scaler.current_scale(), 1024.0);  // growth after 2 clean steps

  LossScaler off(false, at::kCPU);
  auto c = at::full({2}, std::numeric_limits<float>::infinity());
  off.unscale({c});
  EXPECT_FALSE(off.found_non_finite());
  EXPECT_DOUBLE_EQ(off.scale(at::full({}, 3.0)).item<double>(), 3.0);
}

TEST(MixedPrecision, AutoPicksBf16OnTheCpuAndRejectsFloat64) {
  const auto mp = resolve_mixed_precision(true, AmpDtype::kAuto, at::kCPU, at::kFloat);
  EXPECT_TRUE(mp.enabled);
  EXPECT_EQ(mp.dtype, at::kBFloat16);
  EXPECT_FALSE(mp.needs_loss_scaling());
  EXPECT_TRUE(resolve_mixed_precision(true, AmpDtype::kFp16, at::kCPU, at::kFloat).needs_loss_scaling());
  EXPECT_FALSE(resolve_mixed_precision(false, AmpDtype::kFp16, at::kCPU, at::kFloat).enabled);
  EXPECT_NE(
      testing::error_of([] { resolve_mixed_precision(true, AmpDtype::kAuto, at::kCPU, at::kDouble); }).find("--amp"),
      std::string::npos);
}

TEST(MixedPrecision, CheckpointedBlocksRecomputeUnderTheForwardsAutocast) {
  // Under bf16 autocast the recomputation must run in bf16 too: then checkpointed and plain
  // gradients are the same computation, op for op.
  torch::manual_seed(3);
  GptConfig config = gpt_preset("tiny");
  config.vocab_size = 64, config.max_positions = 32;
  Gpt model(config);
  const auto tokens = torch::randint(0, 64, {2, 16}, torch::kLong);
  const auto targets = torch::randint(0, 64, {2, 16}, torch::kLong);
  std::vector<std::vector<at::Tensor>> grads;
  for (bool checkpointed : {false, true}) {
    apply_activation_checkpointing(model, checkpointed ? 1 : 0);
    for (auto& p : model->parameters()) p.mutable_grad() = at::Tensor();
    at::Tensor loss;
    {
      AutocastRegion autocast(at::kCPU, true, at::kBFloat16);
      loss = model->loss_sum(tokens, targets);
    }
    loss.backward();
    std::vector<at::Tensor> g;
    for (auto& p : model->parameters()) g.push_back(p.grad().clone());
    grads.push_back(g);
  }
  for (std::size_t i = 0; i < grads[0].size(); ++i) {
    const double scale = grads[0][i].abs().max().item<double>() + 1e-6;
    ASSERT_LE((grads[0][i] - grads[1][i]).abs().max().item<double>() / scale, 1e-6) << "tensor " << i;
  }
}

TEST_F(TrainerTest, Fp16SkipsExactlyTheStepWithAnInfGradientAndHalvesTheScale) {
  auto o = options("fp16");
  o.memory.amp = true;
  o.memory.amp_dtype = AmpDtype::kFp16;
  o.run.steps = 4;
  o.run.checkpoint_interval = 1;
  o.run.log_file = dir_ / "fp16/metrics.jsonl";
  testing::ScopedEnv inject("AIOS_FAULT_INF_GRAD_AT_STEP", "2");
  const auto summary = train(o);
  EXPECT_EQ(summary.skipped_steps, 1);
  const auto steps = records_of(o.run.log_file, "step");
  ASSERT_EQ(steps.size(), 4u);
  for (const auto& record : steps) EXPECT_EQ(record["skipped"], record["step"] == 2) << record.dump();
  EXPECT_EQ(steps[1]["loss_scale"], 65536.0);  // the scale the skipped step ran at
  EXPECT_EQ(steps[2]["loss_scale"], 32768.0);  // halved for the next
  EXPECT_EQ(steps[3]["loss_scale"], 32768.0);
  // The skipped step changed no parameter; the others did.
  const auto after1 = parameters_of(dir_ / "fp16/ckpt-00000001.pt", o);
  const auto after2 = parameters_of(dir_ / "fp16/ckpt-00000002.pt", o);
  const auto after3 = parameters_of(dir_ / "fp16/ckpt-00000003.pt", o);
  for (std::size_t i = 0; i < after1.size(); ++i) ASSERT_TRUE(torch::equal(after1[i], after2[i])) << "tensor " << i;
  EXPECT_GT(max_relative_difference(after3, after2), 1e-4);
  // The scale is part of the checkpoint: a resumed run continues at 32768.
  auto resumed = o;
  resumed.run.resume = dir_ / "fp16/ckpt-00000003.pt";
  resumed.run.out_dir = dir_ / "fp16-resumed";
  resumed.run.log_file = dir_ / "fp16-resumed/metrics.jsonl";
  train(resumed);
  EXPECT_EQ(records_of(resumed.run.log_file, "step").at(0)["loss_scale"], 32768.0);
}

TEST_F(TrainerTest, Bf16LossStaysWithinOnePercentOfFp32Over50Steps) {
  // Stated bound: the mean loss of steps 41-50 under bf16 autocast is within 1% of fp32's.
  std::vector<double> means;
  for (bool amp : {false, true}) {
    auto o = options(amp ? "bf16" : "fp32");
    o.memory.amp = amp;
    o.memory.amp_dtype = amp ? AmpDtype::kBf16 : AmpDtype::kAuto;
    o.run.steps = 50;
    o.optimizer.warmup_steps = 5;
    o.run.log_file = dir_ / (amp ? "bf16.jsonl" : "fp32.jsonl");
    train(o);
    means.push_back(mean_loss(o.run.log_file, 41, 50));
  }
  expect_mean_loss_close("bf16, mean loss of steps 41-50", means[0], means[1], 3.2, 0.01);
  EXPECT_NE(means[0], means[1]) << "bf16 autocast changed nothing: it did not run";
}

}  // namespace
}  // namespace aios
