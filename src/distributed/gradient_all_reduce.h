// Plain data parallel: every parameter's gradient is summed over ranks, bucket by bucket (about
// `bucket_bytes` each, in one fixed order on every rank), through one flat buffer. Buckets are cut
// from the last parameter backwards, the order in which backward makes gradients final, and go
// out during the step's last backward (distributed/bucket_schedule.h). On GPUs each sum runs on
// NCCL's stream beside the rest of the backward; the buffer is reused once the previous bucket's
// sum is done and copied back. The loss is already divided by the global token count, so the sum
// is the global mean gradient.
#pragma once

#include <optional>
#include <vector>

#include "distributed/bucket_schedule.h"
#include "distributed/gradient_sync.h"

namespace aios {

class GradientAllReduce : public GradientSync {
 public:
  // groups: the optimizer's groups over the whole model; model_order: its parameters in forward order.
  GradientAllReduce(std::vector<Optimizer::Group> groups, const std::vector<at::Tensor>& model_order, Comm& comm,
                    std::int64_t bucket_bytes);

  std::string describe() const override { return "all-reduce"; }
  std::vector<Optimizer::Group> optimizer_groups() const override { return groups_; }
  void start() override { schedule_->arm(); }
  void finish() override;  // every .grad is summed over ranks
  at::Tensor global_norm(const std::vector<at::Tensor>& gradients) override;

  std::size_t buckets() const { return buckets_.size(); }
  const BucketSchedule& schedule() const { return *schedule_; }

 private:
  void launch(std::size_t bucket);  // an undefined grad counts as zero
  void copy_back_summed();          // the bucket in flat_, once its sum is done

  std::vector<Optimizer::Group> groups_;
  std::vector<at::Tensor> params_;                 // in backward order
  std::vector<std::vector<std::size_t>> buckets_;  // indices into params_, in launch order
  at::Tensor flat_;                                // the largest bucket's size
  std::optional<std::size_t> in_flat_;             // the bucket whose sum flat_ holds (or will)
  Comm& comm_;
  std::unique_ptr<BucketSchedule> schedule_;
};

}  // namespace aios
