// Plain data parallel: after the step's last backward, every parameter's gradient is summed over
// ranks, bucket by bucket (about `bucket_bytes` each, in one fixed order on every rank), through
// one flat buffer per bucket. The loss is already divided by the global token count, so the sum
// is the global mean gradient.
//
// Communication starts after all ranks have agreed that the step's forward/backward succeeded
// (the OOM agreement in the trainer): no rank can be left inside a collective that a failed rank
// never enters.
#pragma once

#include <vector>

#include "dist/comm.h"

namespace aios {

class GradientAllReduce {
 public:
  GradientAllReduce(std::vector<at::Tensor> params, Comm& comm, std::int64_t bucket_bytes);
  void all_reduce();  // every parameter's .grad summed over ranks (an undefined grad counts as zero)
  std::size_t buckets() const { return buckets_.size(); }

 private:
  std::vector<at::Tensor> params_;
  std::vector<std::vector<std::size_t>> buckets_;  // parameter indices, in order
  at::Tensor flat_;                                // the largest bucket's size
  Comm& comm_;
};

// Bucket boundaries: consecutive runs of `numels` whose total stays within `bucket_elements`
// (a tensor larger than that gets a bucket of its own).
std::vector<std::vector<std::size_t>> make_buckets(const std::vector<std::int64_t>& numels,
                                                    std::int64_t bucket_elements);

}  // namespace aios
