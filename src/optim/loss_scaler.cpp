#include "optim/loss_scaler.h"

#include <ATen/ATen.h>

#include "base/error.h"

namespace aios {

LossScaler::LossScaler(bool enabled, const c10::Device& device, const LossScalerSettings& settings)
    : enabled_(enabled), settings_(settings) {
  const auto floats = at::TensorOptions(device).dtype(at::kFloat);
  scale_ = at::full({1}, enabled ? settings.init_scale : 1.0, floats);
  growth_tracker_ = at::zeros({1}, floats.dtype(at::kInt));
  found_inf_ = at::zeros({1}, floats);
}

at::Tensor LossScaler::scale(const at::Tensor& loss) const {
  return enabled_ ? loss * scale_.to(loss.scalar_type()).squeeze() : loss;
}

void LossScaler::unscale(const std::vector<at::Tensor>& gradients) {
  if (!enabled_ || gradients.empty()) return;
  at::NoGradGuard no_grad;
  found_inf_.zero_();
  // As GradScaler: the reciprocal in double, then float.
  const auto inv_scale = scale_.to(at::kDouble).reciprocal().to(at::kFloat);
  at::_amp_foreach_non_finite_check_and_unscale_(gradients, found_inf_, inv_scale);
}

bool LossScaler::found_non_finite() const { return enabled_ && found_inf_.item<float>() != 0.0f; }

void LossScaler::update(bool non_finite_on_any_rank) {
  if (!enabled_) return;
  found_inf_.fill_(non_finite_on_any_rank ? 1.0 : 0.0);
  at::_amp_update_scale_(scale_, growth_tracker_, found_inf_, settings_.growth_factor, settings_.backoff_factor,
                         settings_.growth_interval);
}

double LossScaler::current_scale() const { return scale_.item<double>(); }

void LossScaler::save(torch::serialize::OutputArchive& archive) const {
  archive.write("enabled", c10::IValue(enabled_));
  archive.write("scale", scale_, /*is_buffer=*/true);
  archive.write("growth_tracker", growth_tracker_, /*is_buffer=*/true);
}

void LossScaler::load(torch::serialize::InputArchive& archive) {
  c10::IValue enabled;
  archive.read("enabled", enabled);
  // A run may switch precision on resume (bf16 -> fp16 starts from the initial scale).
  if (!enabled_ || !enabled.toBool()) return;
  at::Tensor scale, tracker;
  archive.read("scale", scale, /*is_buffer=*/true);
  archive.read("growth_tracker", tracker, /*is_buffer=*/true);
  scale_.copy_(scale);
  growth_tracker_.copy_(tracker);
}

}  // namespace aios
