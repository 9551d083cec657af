// Mixed precision: which low-precision type autocast uses on this device, and the RAII region
// that turns autocast on for a forward pass. Parameters, gradients and optimizer state stay in
// the model's type (fp32 master weights); autocast runs matmuls and attention in bf16 or fp16.
// fp16 also needs dynamic loss scaling (optim/loss_scaler.h); bf16 does not.
#pragma once

#include <ATen/autocast_mode.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <array>
#include <string>

#include "base/enum_names.h"

namespace aios {

// --amp-dtype: auto picks bf16 where the device computes it natively (CPU, CUDA compute
// capability >= 8.0) and fp16 elsewhere.
enum class AmpDtype { kAuto, kBf16, kFp16 };
constexpr std::array<EnumName<AmpDtype>, 3> enum_names(AmpDtype) {
  return {{{AmpDtype::kAuto, "auto"}, {AmpDtype::kBf16, "bf16"}, {AmpDtype::kFp16, "fp16"}}};
}

struct MixedPrecision {
  bool enabled = false;
  at::ScalarType dtype = at::kFloat;  // the autocast type when enabled
  bool needs_loss_scaling() const { return enabled && dtype == at::kHalf; }
  std::string describe() const;  // "bf16 autocast", "fp16 autocast + loss scaling", "off"
};

// Throws aios::Error for a model type that AMP cannot wrap (float64 reference runs) and for bf16
// forced on a GPU without it.
MixedPrecision resolve_mixed_precision(bool amp, AmpDtype amp_dtype, const c10::Device& device,
                                       at::ScalarType model_dtype);

// Autocast on `device` for the lifetime of the object, as torch.autocast's __enter__/__exit__:
// nesting counted, the weight-cast cache cleared when the outermost region ends (also when an
// exception such as an out-of-memory unwinds through it), and the previous state restored.
class AutocastRegion {
 public:
  AutocastRegion(at::DeviceType device, bool enabled, at::ScalarType dtype, bool cache_enabled = true);
  ~AutocastRegion();
  AutocastRegion(const AutocastRegion&) = delete;
  AutocastRegion& operator=(const AutocastRegion&) = delete;

 private:
  at::DeviceType device_;
  bool was_enabled_;
  at::ScalarType was_dtype_;
  bool was_cache_enabled_;
};

}  // namespace aios
