// Out-of-memory recovery on one device: the failed step is dropped and re-run from the same
// windows at half the micro-batch and twice the accumulation, ending where an unfaulted run ends;
// at micro-batch 1 the run stops with what to enable and keeps its last checkpoint.
#include "base/error.h"
#include "train/fault_injection.h"
#include "train/step_shape.h"
#include "trainer_fixture.h"

namespace aios {
namespace {

TEST(FaultInjector, MemoryLimitIsAPositiveSizeInGib) {
  ::setenv("AIOS_FAULT_MEMORY_GIB", "12.5", 1);
  EXPECT_EQ(FaultInjector::from_environment(0, true).memory_limit_gib(), 12.5);
  for (const char* bad : {"12GiB", "0", "-1", "lots"}) {
    ::setenv("AIOS_FAULT_MEMORY_GIB", bad, 1);
    try {
      FaultInjector::from_environment(0, true);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("AIOS_FAULT_MEMORY_GIB"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  }
  ::unsetenv("AIOS_FAULT_MEMORY_GIB");
  EXPECT_FALSE(FaultInjector::from_environment(0, true).memory_limit_gib());
}

TEST(StepShape, ShrinksKeepingTheWindowsPerStep) {
  TrainOptions o;
  const auto half = shrink_after_oom({8, 1, 0}, o, 1, "oom");
  EXPECT_EQ(half.micro_batch, 4);
  EXPECT_EQ(half.accumulation, 2);
  // 6 windows at micro-batch 3: 1 is the largest divisor of 6 not above 1.5.
  const auto odd = shrink_after_oom({3, 2, 0}, o, 1, "oom");
  EXPECT_EQ(odd.micro_batch, 1);
  EXPECT_EQ(odd.accumulation, 6);
  // At micro-batch 1 the chunk halves (rounding up), then nothing is left.
  const auto chunk = shrink_after_oom({1, 4, 5}, o, 1, "oom");
  EXPECT_EQ(chunk.chunk_size, 3);
  EXPECT_EQ(chunk.accumulation, 4);
  const auto message = testing::error_of([&] { shrink_after_oom({1, 4, 1}, o, 7, "oom"); });
  EXPECT_NE(message.find("step 7"), std::string::npos) << message;
}

TEST(StepShape, AdviceNamesKeptAttentionOutputsOnlyWhereTheyAreKept) {
  TrainOptions o;
  o.memory.gradient_checkpointing = true;
  o.memory.keep_attention_output = true;
  o.run.device = "cuda";
  const auto on_gpu = testing::error_of([&] { shrink_after_oom({1, 1, 0}, o, 3, "oom"); });
  EXPECT_NE(on_gpu.find("--no-keep-attention-output"), std::string::npos) << on_gpu;
  o.run.device = "cpu";
  const auto on_cpu = testing::error_of([&] { shrink_after_oom({1, 1, 0}, o, 3, "oom"); });
  EXPECT_EQ(on_cpu.find("--no-keep-attention-output"), std::string::npos) << on_cpu;
  EXPECT_NE(on_cpu.find("--window-size"), std::string::npos) << on_cpu;
}

TEST_F(TrainerTest, AnOutOfMemoryShrinksTheMicroBatchAndChangesNothingElse) {
  // float64: Adam turns rounding-level gradient differences (4x1 vs 2x2 summation order) into
  // lr-sized steps on near-zero gradients, so fp32 would compare noise, not the recovery.
  auto plain = options("plain");
  plain.model.dtype = ModelDtype::kFloat64;
  plain.run.steps = 6;
  const auto expected = parameters_of(train(plain).last_checkpoint, plain);

  auto faulted = options("oom");
  faulted.model.dtype = ModelDtype::kFloat64;
  faulted.run.steps = 6;
  faulted.run.log_file = dir_ / "oom/metrics.jsonl";
  TrainSummary summary;
  {
    testing::ScopedEnv inject("AIOS_FAULT_OOM_AT_STEP", "3");
    summary = train(faulted);
  }
  EXPECT_EQ(summary.batch_shrinks, 1);
  EXPECT_EQ(summary.micro_batch, 2);
  EXPECT_EQ(summary.accumulation, 2);
  const auto events = records_of(faulted.run.log_file, "event");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["event"], "batch_shrink");
  EXPECT_EQ(events[0]["step"], 3);
  EXPECT_EQ(events[0]["micro_batch_before"], 4);
  EXPECT_EQ(events[0]["micro_batch"], 2);
  const auto steps = records_of(faulted.run.log_file, "step");
  EXPECT_EQ(steps.at(1)["micro_batch"], 4);
  EXPECT_EQ(steps.at(2)["micro_batch"], 2);
  EXPECT_EQ(steps.at(2)["accumulation"], 2);
  EXPECT_EQ(steps.at(2)["tokens"], steps.at(1)["tokens"].get<std::int64_t>() * 3 / 2);  // same tokens per step
  const auto got = parameters_of(summary.last_checkpoint, faulted);
  EXPECT_LT(max_relative_difference(got, expected), 1e-5);
}

TEST_F(TrainerTest, OutOfMemoryAtMicroBatchOneStopsWithWhatToEnable) {
  auto o = options("oom1");
  o.run.steps = 6;
  o.run.checkpoint_interval = 2;
  std::string message;
  {
    testing::ScopedEnv inject("AIOS_FAULT_OOM_AT_STEP", "3");
    testing::ScopedEnv times("AIOS_FAULT_OOM_TIMES", "10");
    message = testing::error_of([&] { train(o); });
  }
  for (const char* expected :
       {"step 3", "micro-batch 1", "--gradient-checkpointing", "--amp", "--use-8bit-optimizer", "--window-size"}) {
    EXPECT_NE(message.find(expected), std::string::npos) << expected << " in: " << message;
  }
  EXPECT_EQ(testing::read_file(dir_ / "oom1/latest"), "ckpt-00000002.pt\n");
  EXPECT_FALSE(path_exists(dir_ / "oom1/ckpt-00000003.pt"));
}

}  // namespace
}  // namespace aios
