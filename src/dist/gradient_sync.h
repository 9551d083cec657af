// Plain data parallel: every parameter's gradient is summed over ranks, bucket by bucket (about
// `bucket_bytes` each, in one fixed order on every rank), through one flat buffer. Buckets go out
// during the step's last backward as their gradients become final (dist/bucket_schedule.h). The
// loss is already divided by the global token count, so the sum is the global mean gradient.
#pragma once

#include <vector>

#include "dist/bucket_schedule.h"
#include "dist/comm.h"

namespace aios {

class GradientAllReduce {
 public:
  GradientAllReduce(std::vector<at::Tensor> params, Comm& comm, std::int64_t bucket_bytes);
  void arm() { schedule_->arm(); }        // before the step's last backward
  void finish() { schedule_->finish(); }  // after it: every .grad is summed over ranks
  std::size_t buckets() const { return buckets_.size(); }
  const BucketSchedule& schedule() const { return *schedule_; }

 private:
  void launch(std::size_t bucket);  // an undefined grad counts as zero

  std::vector<at::Tensor> params_;
  std::vector<std::vector<std::size_t>> buckets_;  // parameter indices, in order
  at::Tensor flat_;                                // the largest bucket's size
  Comm& comm_;
  std::unique_ptr<BucketSchedule> schedule_;
};

// Bucket boundaries: consecutive runs of `numels` whose total stays within `bucket_elements`
// (a tensor larger than that gets a bucket of its own).
std::vector<std::vector<std::size_t>> make_buckets(const std::vector<std::int64_t>& numels,
                                                    std::int64_t bucket_elements);

}  // namespace aios
