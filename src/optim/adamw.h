// AdamW (Loshchilov & Hutter, decoupled weight decay) with fp32 moments, through ATen's fused
// multi-tensor kernel (_fused_adamw_: one launch per parameter group instead of ~10 per
// parameter). Tested against torch::optim::AdamW (tests/test_adamw.cpp).
#pragma once

#include "optim/optimizer.h"

namespace aios {

// One fused AdamW update of `params` with moments `exp_avg`/`exp_avg_sq` and per-parameter step
// counters `steps` (float32 scalars, incremented here). The rate is `lr_on_device` (a float32
// scalar on the parameters' GPU) where defined, else `lr`. Shared by both AdamW variants.
void fused_adamw_update(const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& grads,
                        const std::vector<at::Tensor>& exp_avg, const std::vector<at::Tensor>& exp_avg_sq,
                        const std::vector<at::Tensor>& steps, double lr, const at::Tensor& lr_on_device, double beta1,
                        double beta2, double weight_decay, double eps);

class AdamW : public Optimizer {
 public:
  AdamW(std::vector<Group> groups, const AdamWSettings& settings);

  void step() override;
  std::string kind() const override { return "adamw"; }
  std::int64_t state_bytes() const override;  // both moments and the step counters
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;

 private:
  struct GroupState {
    std::vector<at::Tensor> exp_avg;     // first moment, like the parameter
    std::vector<at::Tensor> exp_avg_sq;  // second moment, like the parameter
    std::vector<at::Tensor> steps;       // float32 scalars on the parameter's device (fused kernel API)
  };
  std::vector<GroupState> state_;  // one per group
};

}  // namespace aios
