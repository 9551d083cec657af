// aios plan's arithmetic: the persistent items equal the tensors a training run holds (CPU), the
// techniques change the items they should, and --fit's proposals sit exactly at the budget's edge.
// Its accuracy for activations is measured on the GPU (bench/memory/plan_accuracy.sh).
#include <gtest/gtest.h>

#include "plan/memory_plan.h"
#include "train/setup.h"
#include "train/train_step.h"
#include "trainer_fixture.h"

namespace aios {
namespace {

double item_bytes(const MemoryPlan& plan, const std::string& moment, const std::string& item) {
  for (const auto& m : plan.moments) {
    if (m.name != moment) continue;
    for (const auto& i : m.items) {
      if (i.name == item) return i.bytes;
    }
  }
  ADD_FAILURE() << "no item '" << item << "' at '" << moment << "'";
  return -1;
}

using MemoryPlanTest = TrainerTest;

TEST_F(MemoryPlanTest, PersistentItemsEqualTheTensorsATrainingStepHolds) {
  for (const bool eight_bit : {false, true}) {
    TrainOptions o = options(eight_bit ? "8bit" : "32bit");
    // Wide enough that the 8-bit optimizer quantizes some tensors (4096 elements and up) and keeps
    // the small ones in 32 bits.
    o.model.n_embd = 64, o.model.n_head = 2;
    o.optimizer.use_8bit_optimizer = eight_bit;
    TrainingSetup run(o);
    StepShape shape{o.data.batch_size, 1, 0};
    torch::Tensor windows = torch::empty({o.data.batch_size, o.data.window_size + 1}, torch::kLong);
    run.train_data->next_windows(o.data.batch_size, windows.data_ptr<std::int64_t>());
    train_step(run, shape, 1, windows);

    double weights = 0, gradients = 0;
    for (const auto& p : run.parameters) {
      weights += static_cast<double>(p.nbytes());
      gradients += static_cast<double>(p.grad().nbytes());
    }
    const MemoryPlan plan = plan_memory(run.config, o, PlanTarget{false, 1});
    EXPECT_EQ(item_bytes(plan, "optimizer step", "weights"), weights);
    EXPECT_EQ(item_bytes(plan, "optimizer step", "gradients"), gradients);
    EXPECT_EQ(item_bytes(plan, "optimizer step", "optimizer state"), static_cast<double>(run.optimizer->state_bytes()))
        << (eight_bit ? "8-bit" : "32-bit");
  }
}

TrainOptions gpt2_options() {
  TrainOptions o;
  o.model.preset = "gpt2";
  o.data.window_size = 1024;
  o.data.batch_size = 16;
  o.memory.amp = false, o.memory.gradient_checkpointing = false, o.memory.chunked_loss = false;
  return o;
}

TEST(MemoryPlan, EachTechniqueShrinksWhatItShould) {
  GptConfig config = gpt_preset("gpt2");
  const PlanTarget gpu{true, 1};
  const TrainOptions base = gpt2_options();
  const MemoryPlan plain = plan_memory(config, base, gpu);
  const std::string forward = "end of the forward (classifier)";

  TrainOptions o = base;
  o.memory.gradient_checkpointing = true;
  // A checkpointed block keeps only its float32 input: 4C bytes per token instead of 64C.
  EXPECT_LT(item_bytes(plan_memory(config, o, gpu), forward, "activations saved for the backward"),
            item_bytes(plain, forward, "activations saved for the backward") / 8);

  o = base;
  o.memory.amp = true;
  EXPECT_LT(item_bytes(plan_memory(config, o, gpu), forward, "activations saved for the backward"),
            0.7 * item_bytes(plain, forward, "activations saved for the backward"));

  o = base;
  o.memory.chunked_loss = true;
  // float32 logits of 16,384 tokens (3.1 GiB) against one chunk's (256 MiB).
  EXPECT_NEAR(item_bytes(plain, forward, "classifier") - item_bytes(plan_memory(config, o, gpu), forward, "classifier"),
              16384.0 * 50257 * 4 - 256.0 * (1 << 20), 16.0 * 1024 * 1024);

  o = base;
  o.optimizer.use_8bit_optimizer = true;
  const double state8 = item_bytes(plan_memory(config, o, gpu), "optimizer step", "optimizer state");
  EXPECT_GT(state8, 2.0 * static_cast<double>(config.parameter_count()));
  EXPECT_LT(state8, 2.1 * static_cast<double>(config.parameter_count()));

  o = base;
  const PlanTarget four{true, 4};
  EXPECT_DOUBLE_EQ(item_bytes(plan_memory(config, o, four), "optimizer step", "optimizer state"),
                   item_bytes(plain, "optimizer step", "optimizer state") / 4);
  o.parallel.shard_optimizer = false;
  EXPECT_DOUBLE_EQ(item_bytes(plan_memory(config, o, four), "optimizer step", "optimizer state"),
                   item_bytes(plain, "optimizer step", "optimizer state"));

  // Activations grow with the micro-batch, the peak with them.
  o = base;
  o.data.batch_size = 32;
  EXPECT_GT(plan_memory(config, o, gpu).peak_bytes, plain.peak_bytes + 5.0 * (1LL << 30));
}

TEST(MemoryPlan, FitProposalsSitAtTheBudgetsEdge) {
  const GptConfig config = gpt_preset("gpt2-xl");
  const PlanTarget gpu{true, 1};
  TrainOptions o = gpt2_options();
  o.model.preset = "gpt2-xl";
  const double budget = 40.0 * (1LL << 30);
  const double usable = budget - kCudaContextBytes;
  const auto proposals = fit_memory(config, o, gpu, budget);
  ASSERT_FALSE(proposals.empty());

  // The largest micro-batch with the flags given: it fits, one more does not.
  const auto& largest = proposals.front();
  EXPECT_LE(largest.plan.reserved_bytes, usable);
  TrainOptions more = largest.options;
  more.data.batch_size += 1;
  EXPECT_GT(plan_memory(config, more, gpu).reserved_bytes, usable);
  EXPECT_LT(largest.options.data.batch_size, 16);

  // The cheapest flags for the batch asked: they fit, and without the last one added they do not.
  ASSERT_GE(proposals.size(), 2u);
  const auto& cheapest = proposals[1];
  EXPECT_EQ(cheapest.options.data.batch_size * cheapest.options.data.gradient_accumulation_steps, 16);
  EXPECT_LE(cheapest.plan.reserved_bytes, usable);
  ASSERT_FALSE(cheapest.flags.empty());
  EXPECT_EQ(cheapest.flags.front(), "--amp");  // the cheapest technique is tried first

  // Nothing fits a GPU smaller than the weights.
  EXPECT_TRUE(fit_memory(config, o, gpu, 4.0 * (1LL << 30)).empty());
}

}  // namespace
}  // namespace aios
