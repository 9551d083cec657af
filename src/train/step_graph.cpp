#include "train/step_graph.h"

#include <chrono>
#include <stdexcept>

#include "train/device_stats.h"

#if AIOS_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/util/Exception.h>
#endif

namespace aios {

std::string StepGraph::unavailable_because(const StepGraphConditions& run) {
  if (!run.device.is_cuda()) return "the device is not a GPU";
#if !AIOS_WITH_CUDA
  return "this build of aios has no CUDA";
#else
  if (run.world > 1) return "more than one rank: the gradient collectives are not captured";
  if (run.loss_scaling) return "fp16 loss scaling decides on the host whether each update is applied";
  if (run.dropout) return "dropout: checkpointed blocks replay their random numbers from the host";
  if (run.fault_injection) return "--fault-injection: faults strike between the step's kernels";
  if (run.chunked_training) return "--chunked-training: its step is not yet checked under a CUDA graph";
  return "";
#endif
}

#if AIOS_WITH_CUDA

struct StepGraph::Cuda {
  explicit Cuda(c10::DeviceIndex device)
      : stream(at::cuda::getStreamFromPool(/*isHighPriority=*/false, device)),
        guard(stream),
        pool(at::cuda::graph_pool_handle()) {}
  at::cuda::CUDAStream stream;
  c10::cuda::CUDAStreamGuard guard;  // restores the device's previous stream when the run ends
  c10::MempoolId_t pool;             // the graph's own memory
  at::cuda::CUDAGraph graph;
};

StepGraph::StepGraph(const c10::Device& device) : device_(device) {
  synchronize(device);  // what set-up queued on the default stream, before the new stream runs
  cuda_ = std::make_unique<Cuda>(device.index());
}

StepGraph::~StepGraph() {
  // The stream's last work ends before the default stream is current again.
  if (cuda_) cuda_->stream.synchronize();
}

namespace {

// The end of a capture that threw, wherever it threw: the stream leaves capture mode and the memory
// the capture took goes back, so that the run can go on eagerly. capture_end throws before or
// after it ends the capture and hands the pool to the graph (whose reset then frees it); pool()
// answers only after.
void abandon_capture(at::cuda::CUDAGraph& graph, const at::cuda::CUDAStream& stream, c10::DeviceIndex device,
                     c10::MempoolId_t pool) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream.stream(), &status) == cudaSuccess && status != cudaStreamCaptureStatusNone) {
    cudaGraph_t partial = nullptr;
    if (cudaStreamEndCapture(stream.stream(), &partial) == cudaSuccess && partial != nullptr) {
      cudaGraphDestroy(partial);
    }
  }
  (void)cudaGetLastError();  // capture errors are not sticky; clear the one left behind
  bool graph_owns_pool = true;
  try {
    (void)graph.pool();
  } catch (const c10::Error&) {
    graph_owns_pool = false;
  }
  if (!graph_owns_pool) {
    try {
      c10::cuda::CUDACachingAllocator::endAllocateToPool(device, pool);
      c10::cuda::CUDACachingAllocator::releasePool(device, pool);
    } catch (const c10::Error&) {  // the capture threw before the allocator took the pool
    }
  }
  graph.reset();
}

std::string first_line(const std::exception& e) {
  std::string what = e.what();
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) what = c10_error->what_without_backtrace();
  return what.substr(0, what.find('\n'));
}

}  // namespace

bool StepGraph::replays(const StepShape& shape) {
  if (!failure_.empty()) return false;
  const bool same = shape.micro_batch == shape_.micro_batch && shape.accumulation == shape_.accumulation &&
                    shape.chunk_size == shape_.chunk_size;
  if (captured_) return same;
  if (!same) {  // a new shape (the first, or one after an out-of-memory shrink) warms up afresh
    shape_ = shape;
    eager_steps_ = 0;
  }
  if (eager_steps_ < kEagerStepsFirst) {
    ++eager_steps_;
    return false;
  }
  return true;
}

std::optional<StepOutputs> StepGraph::replay(const at::Tensor& windows,
                                             const std::function<StepOutputs(const at::Tensor&)>& queue_step) {
  if (!captured_) {
    const auto start = std::chrono::steady_clock::now();
    const auto device = static_cast<c10::DeviceIndex>(device_.index());
    // The eager steps' cached blocks go back first: the graph's pool takes the step's memory anew.
    release_cached_memory(device_);  // sync
    reset_peak_memory(device_);
    windows_ = windows.clone();
    bool capturing = false;
    try {
      cuda_->graph.capture_begin(cuda_->pool);
      capturing = true;
      outputs_ = queue_step(windows_);
      cuda_->graph.capture_end();
      capturing = false;
    } catch (const std::exception& e) {
      if (capturing) abandon_capture(cuda_->graph, cuda_->stream, device, cuda_->pool);
      outputs_ = StepOutputs{};
      windows_ = at::Tensor();
      failure_ = first_line(e);
      release_cached_memory(device_);  // sync
      return std::nullopt;
    }
    captured_ = true;
    capture_peak_bytes_ = memory_stats(device_).peak_allocated;
    capture_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  } else {
    windows_.copy_(windows, /*non_blocking=*/true);
  }
  cuda_->graph.replay();
  // The next replay rewrites the outputs; the host reads this step's after queuing the next one.
  return StepOutputs{outputs_.loss.clone(), outputs_.grad_norm.clone()};
}

void StepGraph::release(const std::string& why) {
  cuda_->graph.reset();  // after the pause's sync: no replay is running
  outputs_ = StepOutputs{};
  windows_ = at::Tensor();
  captured_ = false;
  failure_ = why;
}

bool StepGraph::run_beside(const std::function<void()>& work, std::vector<at::Tensor>& parameters,
                           const std::string& what) {
  if (!captured_) {
    work();
    return false;
  }
  try {
    work();
    return false;
  } catch (const c10::OutOfMemoryError&) {
  }
  for (auto& p : parameters) p.mutable_grad() = at::Tensor();
  release(what + " ran out of memory beside the graph");
  release_cached_memory(device_);  // sync
  work();
  return true;
}

#else

struct StepGraph::Cuda {};
StepGraph::StepGraph(const c10::Device& device) : device_(device) {
  throw std::logic_error("aios: CUDA graphs need a build with CUDA");
}
StepGraph::~StepGraph() = default;
bool StepGraph::replays(const StepShape&) { return false; }
void StepGraph::release(const std::string& why) { failure_ = why; }
bool StepGraph::run_beside(const std::function<void()>& work, std::vector<at::Tensor>&, const std::string&) {
  work();
  return false;
}
std::optional<StepOutputs> StepGraph::replay(const at::Tensor&, const std::function<StepOutputs(const at::Tensor&)>&) {
  return std::nullopt;
}

#endif

}  // namespace aios
