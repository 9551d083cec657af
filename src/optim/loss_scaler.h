// Dynamic loss scaling for fp16 mixed precision, as PyTorch's GradScaler: the loss is multiplied
// by a scale before backward so small gradients survive fp16; gradients are unscaled before
// clipping and the optimizer. A step whose gradients hold inf/NaN is skipped and the scale falls
// (backoff); after `growth_interval` clean steps it grows. Built on ATen's
// _amp_foreach_non_finite_check_and_unscale_ and _amp_update_scale_, which run on the device
// without a host sync. bf16 and fp32 runs use a disabled scaler (scale 1, nothing skipped).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <vector>

namespace aios {

struct LossScalerSettings {  // GradScaler's defaults
  double init_scale = 65536.0;
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  std::int64_t growth_interval = 2000;
};

class LossScaler {
 public:
  LossScaler(bool enabled, const c10::Device& device, const LossScalerSettings& settings = {});

  bool enabled() const { return enabled_; }
  at::Tensor scale(const at::Tensor& loss) const;  // loss · scale (loss unchanged when disabled)
  // Divides the gradients by the scale in place and records whether any is inf/NaN. All
  // gradients must share one device and type (fp32 master gradients).
  void unscale(const std::vector<at::Tensor>& gradients);
  bool found_non_finite() const;  // in this process's gradients since the last unscale (sync); false when disabled
  // Backoff or growth. `non_finite_on_any_rank` is the finding every rank agreed on: each rank
  // unscales only its own gradients (a ZeRO-1 shard), so its own finding can differ from its
  // peers', and every rank must change its scale alike.
  void update(bool non_finite_on_any_rank);
  double current_scale() const;  // sync; 1 when disabled

  void save(torch::serialize::OutputArchive& archive) const;
  void load(torch::serialize::InputArchive& archive);

 private:
  bool enabled_;
  LossScalerSettings settings_;
  at::Tensor scale_;           // float32 [1] on the device
  at::Tensor growth_tracker_;  // int32 [1]: clean steps since the last change
  at::Tensor found_inf_;       // float32 [1]: 1 when the last unscale saw inf/NaN
};

}  // namespace aios
