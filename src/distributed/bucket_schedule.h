// Overlaps gradient communication with backward: during the step's last backward (armed), a
// post-accumulate-grad hook on every parameter marks its gradient final; when every gradient of a
// bucket is final and every earlier bucket has been launched, the bucket's collective is
// launched (on GPUs NCCL runs it on the stream while backward goes on). Buckets are launched in one
// fixed order on every rank, and `finish` launches whatever is left (a bucket of unused parameters,
// or everything after a rank failed mid-step), so every rank always issues every bucket's
// collective exactly once per step: no peer is left waiting in one.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <mutex>
#include <vector>

namespace aios {

// Bucket boundaries: consecutive runs of `numels` whose total stays within `bucket_elements`
// (a tensor larger than that gets a bucket of its own).
std::vector<std::vector<std::size_t>> make_buckets(const std::vector<std::int64_t>& numels,
                                                   std::int64_t bucket_elements);

// Indices of `params` in the order a backward pass makes their gradients final: the reverse of
// their order in `model_order` (the model's parameters in forward order; a tied parameter, used
// first and last, is final only at the end). Parameters missing from `model_order` come last.
std::vector<std::size_t> backward_order(const std::vector<at::Tensor>& params,
                                        const std::vector<at::Tensor>& model_order);

class BucketSchedule {
 public:
  // buckets: parameter indices per bucket, in launch order. launch(b) runs bucket b's collective.
  BucketSchedule(std::vector<at::Tensor> params, std::vector<std::vector<std::size_t>> buckets,
                 std::function<void(std::size_t)> launch);
  ~BucketSchedule();  // removes the hooks
  BucketSchedule(const BucketSchedule&) = delete;
  BucketSchedule& operator=(const BucketSchedule&) = delete;

  void arm();  // the next backward is the step's last
  // After it, or after a failure: launch every bucket not launched yet, in order. A bucket counts
  // as launched only once launch(b) has returned, so a launch that throws (out of memory while
  // staging) is launched again here and every rank still issues every collective once.
  void finish();

  std::size_t launched_during_backward() const { return launched_in_backward_; }  // for tests
  // Gradients not yet final when the first bucket went out in the last armed backward: how much of
  // the backward was left to overlap with communication (0: it all waited for the end).
  std::size_t pending_at_first_launch() const { return pending_at_first_launch_; }

 private:
  void gradient_ready(std::size_t param);
  void launch_ready_buckets();  // with mutex_ held

  std::vector<at::Tensor> params_;
  std::vector<std::vector<std::size_t>> buckets_;
  std::vector<std::size_t> bucket_of_;
  std::vector<std::size_t> pending_;  // per bucket: gradients not final yet
  std::function<void(std::size_t)> launch_;
  std::size_t next_ = 0;  // the next bucket to launch
  bool armed_ = false;
  std::size_t launched_in_backward_ = 0;
  std::size_t pending_at_first_launch_ = 0;
  std::mutex mutex_;  // CUDA parameters' hooks run on the autograd engine's device thread
};

}  // namespace aios
