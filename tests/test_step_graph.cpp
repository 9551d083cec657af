// The training step as a CUDA graph (train/step_graph.h): replays read new inputs and device
// scalars, a capture that fails leaves the device usable and the run eager, and whole runs with
// graphs equal the eager runs. The GPU tests run in bench/run.sh's gpu-tests stage.
#include <torch/cuda.h>

#include "train/step_graph.h"
#include "trainer_fixture.h"

namespace aios {
namespace {

bool has_gpu() { return torch::cuda::is_available(); }

TEST(CudaGraph, NamesWhyARunStaysEager) {
  EXPECT_EQ(StepGraph::unavailable_because({torch::Device(torch::kCPU)}), "the device is not a GPU");
  const torch::Device gpu(torch::kCUDA, 0);
  if (!at::hasCUDA()) {
    EXPECT_EQ(StepGraph::unavailable_because({gpu}), "this build of aios has no CUDA");
    return;
  }
  EXPECT_EQ(StepGraph::unavailable_because({gpu}), "");
  const auto reason = [&](StepGraphConditions c) { return StepGraph::unavailable_because(c); };
  EXPECT_NE(reason({gpu, 2}).find("more than one rank"), std::string::npos);
  EXPECT_NE(reason({gpu, 1, true}).find("fp16"), std::string::npos);
  EXPECT_NE(reason({gpu, 1, false, true}).find("dropout"), std::string::npos);
  EXPECT_NE(reason({gpu, 1, false, false, true}).find("--fault-injection"), std::string::npos);
  EXPECT_NE(reason({gpu, 1, false, false, false, true}).find("--chunked-training"), std::string::npos);
}

TEST(CudaGraph, ReplaysReadEachStepsInputsAndDeviceScalars) {
  if (!has_gpu()) GTEST_SKIP() << "needs a CUDA device (runs in bench/run.sh gpu-tests)";
  const auto cuda = torch::TensorOptions(torch::kCUDA);
  auto rate = torch::zeros({}, cuda.dtype(torch::kFloat));
  auto state = torch::zeros({4}, cuda.dtype(torch::kFloat));
  StepGraph graph(torch::Device(torch::kCUDA, 0));
  // A stand-in step: the state moves by rate × the windows' mean, as an update moves parameters.
  const auto step = [&](const torch::Tensor& windows) {
    state.add_(rate * windows.to(torch::kFloat).mean());
    return StepOutputs{state.sum(), windows.to(torch::kFloat).mean()};
  };
  const StepShape shape{2, 1, 0};
  float expected = 0;
  for (int i = 0; i < 6; ++i) {
    const auto windows = torch::full({2, 3}, i + 1, cuda.dtype(torch::kLong));
    rate.fill_(0.5 * (i + 1));
    StepOutputs out;
    if (graph.replays(shape)) {
      const auto replayed = graph.replay(windows, step);
      ASSERT_TRUE(replayed.has_value()) << graph.failure();
      out = *replayed;
    } else {
      out = step(windows);
    }
    expected += 4 * 0.5f * static_cast<float>((i + 1) * (i + 1));
    EXPECT_FLOAT_EQ(out.loss.item<float>(), expected) << "step " << i + 1;
    EXPECT_FLOAT_EQ(out.grad_norm.item<float>(), static_cast<float>(i + 1)) << "step " << i + 1;
    EXPECT_EQ(graph.captured(), i >= StepGraph::kEagerStepsFirst) << "step " << i + 1;
  }
  // Another shape is not the captured one: eager.
  EXPECT_FALSE(graph.replays(StepShape{1, 2, 0}));
  // Work between steps beside the graph: run once when it fits; when it runs out of memory, the
  // graph is given back, the gradients it holds dropped, the work run again; eager from then on.
  auto weight = torch::ones({3}, cuda.dtype(torch::kFloat).requires_grad(true));
  weight.mutable_grad() = torch::ones({3}, cuda.dtype(torch::kFloat));
  std::vector<torch::Tensor> parameters{weight};
  int runs = 0;
  EXPECT_FALSE(graph.run_beside([&] { ++runs; }, parameters, "evaluation"));
  EXPECT_EQ(runs, 1);
  EXPECT_TRUE(graph.captured());
  const auto out_of_memory_once = [&] {
    if (++runs == 2) TORCH_CHECK_WITH(OutOfMemoryError, false, "injected: out of memory beside the graph");
  };
  EXPECT_TRUE(graph.run_beside(out_of_memory_once, parameters, "evaluation at step 6"));
  EXPECT_EQ(runs, 3);
  EXPECT_FALSE(graph.captured());
  EXPECT_FALSE(weight.grad().defined());
  EXPECT_NE(graph.failure().find("evaluation at step 6"), std::string::npos);
  EXPECT_FALSE(graph.replays(shape));
  const auto windows = torch::full({2, 3}, 7, cuda.dtype(torch::kLong));
  EXPECT_FLOAT_EQ(step(windows).grad_norm.item<float>(), 7.0f);
}

TEST(CudaGraph, ACaptureThatFailsLeavesTheDeviceUsableAndTheRunEager) {
  if (!has_gpu()) GTEST_SKIP() << "needs a CUDA device (runs in bench/run.sh gpu-tests)";
  const auto cuda = torch::TensorOptions(torch::kCUDA).dtype(torch::kFloat);
  StepGraph graph(torch::Device(torch::kCUDA, 0));
  const StepShape shape{1, 1, 0};
  // A step that waits for the host (reads a value), which no capture can hold.
  const auto step = [&](const torch::Tensor& windows) {
    const auto total = windows.to(torch::kFloat).sum();
    const double host = total.item<double>();
    return StepOutputs{total * host, total};
  };
  const auto windows = torch::ones({1, 4}, torch::TensorOptions(torch::kCUDA).dtype(torch::kLong));
  for (int i = 0; i < StepGraph::kEagerStepsFirst; ++i) {
    ASSERT_FALSE(graph.replays(shape));
    EXPECT_DOUBLE_EQ(step(windows).loss.item<double>(), 16.0);
  }
  ASSERT_TRUE(graph.replays(shape));
  EXPECT_FALSE(graph.replay(windows, step).has_value());
  EXPECT_FALSE(graph.failure().empty());
  EXPECT_FALSE(graph.captured());
  EXPECT_FALSE(graph.replays(shape)) << "after a failed capture every step is eager";
  // The device goes on: the eager step runs and its results come back.
  EXPECT_DOUBLE_EQ(step(windows).loss.item<double>(), 16.0);
  EXPECT_DOUBLE_EQ((torch::ones({8}, cuda) * 2).sum().item<double>(), 16.0);
}

class CudaGraphTrainerTest : public TrainerTest {
 protected:
  TrainOptions gpu_options(const std::string& run) const {
    TrainOptions o = options(run);
    o.run.device = "cuda";
    o.run.fault_injection = false;  // graphs stay off with fault injection
    o.run.steps = 12;
    o.optimizer.warmup_steps = 4;  // the rate changes from step to step across the capture
    return o;
  }

  // Runs `o` with and without CUDA graphs: the graphed run captures at step 3 and replays after,
  // and its losses and final weights equal the eager run's within `tolerance` (relative; the two
  // differ at most in the order of atomic additions inside the libraries' kernels).
  void expect_graphs_equal_eager(TrainOptions o, const std::string& name, double tolerance) {
    const std::string base = o.run.out_dir;
    o.run.log_file = base + "-graphs.jsonl";
    o.run.out_dir = base + "-graphs";
    o.run.cuda_graphs = true;
    const auto graphed = train(o);
    TrainOptions eager_options = o;
    eager_options.run.log_file = base + "-eager.jsonl";
    eager_options.run.out_dir = base + "-eager";
    eager_options.run.cuda_graphs = false;
    const auto eager = train(eager_options);

    EXPECT_EQ(records_of(o.run.log_file, "config").at(0)["cuda_graphs"], "on") << name;
    const auto events = records_of(o.run.log_file, "event");
    ASSERT_FALSE(events.empty()) << name;
    EXPECT_EQ(events.front()["event"], "cuda_graph_captured") << name << ": " << events.front().dump();
    EXPECT_EQ(events.front()["step"], StepGraph::kEagerStepsFirst + 1) << name;
    const auto graphed_steps = records_of(o.run.log_file, "step");
    const auto eager_steps = records_of(eager_options.run.log_file, "step");
    ASSERT_EQ(graphed_steps.size(), eager_steps.size());
    for (std::size_t i = 0; i < graphed_steps.size(); ++i) {
      EXPECT_EQ(graphed_steps[i]["cuda_graph"].get<bool>(), static_cast<int>(i) >= StepGraph::kEagerStepsFirst)
          << name << " step " << i + 1;
      EXPECT_FALSE(eager_steps[i].contains("cuda_graph")) << name;
      const double a = graphed_steps[i]["loss"].get<double>(), b = eager_steps[i]["loss"].get<double>();
      EXPECT_LE(std::abs(a - b) / b, tolerance) << name << " step " << i + 1 << ": " << a << " vs " << b;
    }
    // Both learned: each replay applied its own step's rate, not the capture's.
    EXPECT_LT(graphed_steps.back()["loss"].get<double>(), graphed_steps.front()["loss"].get<double>() - 0.5) << name;
    const auto a = parameters_of(graphed.last_checkpoint, o), b = parameters_of(eager.last_checkpoint, o);
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      const double worst = ((a[i] - b[i]).abs() / (b[i].abs() + 1e-3)).max().item<double>();
      EXPECT_LE(worst, 100 * tolerance) << name << " parameter " << i;
    }
  }
};

TEST_F(CudaGraphTrainerTest, GraphedStepsEqualEagerStepsFastestConfiguration) {
  if (!has_gpu()) GTEST_SKIP() << "needs a CUDA device (runs in bench/run.sh gpu-tests)";
  TrainOptions o = gpu_options("fast");
  o.memory.amp = true;  // bf16 autocast, fp32 AdamW, whole-vocabulary classifier
  o.memory.chunked_loss = false;
  // Evaluation and checkpoints between replays run eagerly beside the graph's memory.
  o.run.eval_interval = 5, o.run.eval_batches = 2;
  o.run.checkpoint_interval = 4;
  expect_graphs_equal_eager(o, "bf16, fp32 AdamW", 1e-4);
}

TEST_F(CudaGraphTrainerTest, GraphedStepsEqualEagerStepsEverythingOn) {
  if (!has_gpu()) GTEST_SKIP() << "needs a CUDA device (runs in bench/run.sh gpu-tests)";
  TrainOptions o = gpu_options("everything");
  o.memory.amp = true;
  o.memory.gradient_checkpointing = true;
  o.memory.chunked_loss = true;
  o.memory.loss_chunk_tokens = 24;  // several chunks per micro-batch
  o.optimizer.use_8bit_optimizer = true;
  o.data.batch_size = 2, o.data.gradient_accumulation_steps = 2;
  expect_graphs_equal_eager(o, "checkpointing, chunked loss, 8-bit AdamW, accumulation 2", 1e-4);
}

TEST_F(TrainerTest, CudaGraphsNameWhyTheyAreOff) {
  TrainOptions o = options("cpu");
  o.run.log_file = o.run.out_dir + ".jsonl";
  train(o);
  EXPECT_EQ(records_of(o.run.log_file, "config").at(0)["cuda_graphs"], "the device is not a GPU");
  for (const auto& step : records_of(o.run.log_file, "step")) EXPECT_FALSE(step.contains("cuda_graph"));

  o.run.cuda_graphs = false;
  o.run.out_dir += "-off";
  o.run.log_file = o.run.out_dir + ".jsonl";
  train(o);
  EXPECT_EQ(records_of(o.run.log_file, "config").at(0)["cuda_graphs"], "off (--no-cuda-graphs)");
}

}  // namespace
}  // namespace aios
