// Plain data parallel: every parameter's gradient is summed over ranks, bucket by bucket (about
// `bucket_bytes` each, in one fixed order on every rank), through one flat buffer. Buckets are cut
// from the last parameter backwards, the order in which backward makes gradients final, and go
// out during the step's last backward (dist/bucket_schedule.h). On GPUs each sum runs on NCCL's
// stream beside the rest of the backward; the buffer is reused once the previous bucket's sum is
// done and copied back. The loss is already divided by the global token count, so the sum is the
// global mean gradient.
#pragma once

#include <optional>
#include <vector>

#include "dist/bucket_schedule.h"
#include "dist/comm.h"

namespace aios {

class GradientAllReduce {
 public:
  // params: the model's parameters in their forward order.
  GradientAllReduce(const std::vector<at::Tensor>& params, Comm& comm, std::int64_t bucket_bytes);
  void arm() { schedule_->arm(); }  // before the step's last backward
  void finish();                    // after it: every .grad is summed over ranks
  std::size_t buckets() const { return buckets_.size(); }
  const BucketSchedule& schedule() const { return *schedule_; }

 private:
  void launch(std::size_t bucket);  // an undefined grad counts as zero
  void copy_back_summed();          // the bucket in flat_, once its sum is done

  std::vector<at::Tensor> params_;                 // in backward order
  std::vector<std::vector<std::size_t>> buckets_;  // indices into params_, in launch order
  at::Tensor flat_;                                // the largest bucket's size
  std::optional<std::size_t> in_flat_;             // the bucket whose sum flat_ holds (or will)
  Comm& comm_;
  std::unique_ptr<BucketSchedule> schedule_;
};

// Bucket boundaries: consecutive runs of `numels` whose total stays within `bucket_elements`
// (a tensor larger than that gets a bucket of its own).
std::vector<std::vector<std::size_t>> make_buckets(const std::vector<std::int64_t>& numels,
                                                    std::int64_t bucket_elements);

// Indices of `params` in the order a backward pass makes their gradients final: the reverse of
// their order in `model_order` (the model's parameters in forward order; a tied parameter, used
// first and last, is final only at the end). Parameters missing from `model_order` come last.
std::vector<std::size_t> backward_order(const std::vector<at::Tensor>& params,
                                        const std::vector<at::Tensor>& model_order);

}  // namespace aios
