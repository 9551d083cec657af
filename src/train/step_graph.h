// The training step as a CUDA graph. Eager, the host launches a step's kernels one by one (about
// 760 for GPT-2 124M) and the GPU idles whenever the host falls behind; a graph captured from one
// step launches all of them at once. The graph is captured from the same code the eager step runs (train_step.cpp:
// queue_step), after a few eager steps have created every library handle, workspace and kernel
// plan, and every later step of the same shape replays it:
//   - inputs are fixed addresses: each step's windows are copied into the graph's own buffer, and
//     the learning rate and the optimizer's step counts are device scalars (optim/optimizer.h);
//   - outputs are fixed addresses too: each replay's loss and norm are copied out at once, since
//     the host reads a step after queuing the next;
//   - nothing in the step may wait for the host: runs that need it stay eager (unavailable_because).
// A capture that fails (a library call that cannot be captured, out of memory) leaves the run
// eager, said once; a step of another shape (an out-of-memory shrink before the capture) is eager.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "train/step_shape.h"

namespace aios {

// What one queued step leaves on the device: this rank's share of the step's mean loss, and the
// global gradient norm before clipping.
struct StepOutputs {
  at::Tensor loss, grad_norm;
};

// What the run looks like, for the decision whether its step can be captured.
struct StepGraphConditions {
  c10::Device device{c10::kCPU};
  std::int64_t world = 1;
  bool loss_scaling = false;  // fp16: the host decides whether the update is applied
  bool dropout = false;       // checkpointed blocks replay their random numbers from the host's RNG state
  bool fault_injection = false;
  bool chunked_training = false;  // not yet run under a graph on a GPU
};

class StepGraph {
 public:
  // Eager steps of one shape before the capture: the first allocates the model's gradients and the
  // libraries' workspaces, the second runs as every later step will.
  static constexpr int kEagerStepsFirst = 2;

  // Why the step cannot be captured in such a run, or "" when it can.
  static std::string unavailable_because(const StepGraphConditions& run);

  // Makes a stream of its own current on `device` (a capture needs a stream other than the default
  // one) for as long as it lives, after the work queued on the default stream is done.
  explicit StepGraph(const c10::Device& device);
  ~StepGraph();
  StepGraph(const StepGraph&) = delete;
  StepGraph& operator=(const StepGraph&) = delete;

  // Whether a step of `shape` is to run from the graph (captured first when it is not yet): true
  // once kEagerStepsFirst eager steps of that shape have run, false after a failed capture. Each
  // call that returns false for the shape being warmed up counts as one of its eager steps.
  bool replays(const StepShape& shape);

  // Copies `windows` into the graph's input and launches the graph, capturing it from
  // `queue_step(graph's windows)` on first use. Returns copies of the outputs, or nothing when the
  // capture failed (failure() says why; the caller runs the step eagerly).
  std::optional<StepOutputs> replay(const at::Tensor& windows,
                                    const std::function<StepOutputs(const at::Tensor&)>& queue_step);

  // Gives the graph and its memory back (the pool is freed once nothing allocated in it is alive:
  // the caller drops the gradients it holds), for work between steps that ran out of memory
  // beside it; every later step runs eagerly, and failure() says `why`.
  void release(const std::string& why);

  // Runs `work` (between steps: evaluation, sampling), which allocates beside the graph's memory
  // where eagerly it would reuse the step's freed blocks. Where it runs out of memory there, the
  // graph and its memory are given back (with the gradients in `parameters`, which the graph's
  // pool holds; the next step writes them anew) and `work` runs once more. Returns true when it
  // gave the graph back; `what` names the work in failure().
  bool run_beside(const std::function<void()>& work, std::vector<at::Tensor>& parameters, const std::string& what);

  bool captured() const { return captured_; }
  const std::string& failure() const { return failure_; }
  // The most memory allocated while the graph was captured: a replay allocates nothing, but holds
  // all of that in the graph's pool.
  std::int64_t capture_peak_bytes() const { return capture_peak_bytes_; }
  double capture_seconds() const { return capture_seconds_; }

 private:
  struct Cuda;  // the stream, its guard and the graph (CUDA builds only)
  std::unique_ptr<Cuda> cuda_;
  c10::Device device_;
  StepShape shape_{0, 0, 0};
  int eager_steps_ = 0;
  bool captured_ = false;
  std::string failure_;
  at::Tensor windows_;   // the graph's input
  StepOutputs outputs_;  // the graph's outputs, rewritten by each replay
  std::int64_t capture_peak_bytes_ = 0;
  double capture_seconds_ = 0;
};

}  // namespace aios
