#include "distributed/gradient_sync.h"

#include <ATen/ATen.h>

#include "distributed/gradient_all_reduce.h"
#include "distributed/zero_sharding.h"

namespace aios {
namespace {

// One process: the gradients are already the whole step's.
class LocalGradients : public GradientSync {
 public:
  explicit LocalGradients(std::vector<Optimizer::Group> groups) : groups_(std::move(groups)) {}
  std::string describe() const override { return "local"; }
  std::vector<Optimizer::Group> optimizer_groups() const override { return groups_; }
  void start() override {}
  void finish() override {}
  at::Tensor global_norm(const std::vector<at::Tensor>& gradients) override {
    return gradients.empty() ? at::zeros({}, at::kFloat) : gradient_norm(gradients);
  }

 private:
  std::vector<Optimizer::Group> groups_;
};

}  // namespace

std::unique_ptr<GradientSync> make_gradient_sync(std::vector<Optimizer::Group> groups,
                                                 const std::vector<at::Tensor>& model_order, Comm& comm,
                                                 bool shard_optimizer, std::int64_t bucket_bytes) {
  if (comm.world() == 1) return std::make_unique<LocalGradients>(std::move(groups));
  if (shard_optimizer) return std::make_unique<ZeroSharding>(groups, comm, bucket_bytes, model_order);
  return std::make_unique<GradientAllReduce>(std::move(groups), model_order, comm, bucket_bytes);
}

}  // namespace aios
