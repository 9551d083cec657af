#include "memory/mixed_precision.h"

#if AIOS_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

#include "base/error.h"

namespace aios {
namespace {

bool device_computes_bf16(const c10::Device& device) {
#if AIOS_WITH_CUDA
  if (device.is_cuda()) return at::cuda::getDeviceProperties(device.index())->major >= 8;
#endif
  return device.is_cpu();
}

}  // namespace

std::string MixedPrecision::describe() const {
  if (!enabled) return "off";
  return dtype == at::kHalf ? "fp16 autocast + dynamic loss scaling" : "bf16 autocast";
}

MixedPrecision resolve_mixed_precision(bool amp, AmpDtype amp_dtype, const c10::Device& device,
                                       at::ScalarType model_dtype) {
  if (!amp) return {};
  if (model_dtype != at::kFloat) {
    throw Error("--amp",
                "mixed precision wraps a float32 model, not --model-dtype " + std::string(c10::toString(model_dtype)),
                "--no-amp with --model-dtype float64, or --model-dtype float32");
  }
  MixedPrecision mp;
  mp.enabled = true;
  switch (amp_dtype) {
    case AmpDtype::kFp16:
      mp.dtype = at::kHalf;
      break;
    case AmpDtype::kBf16:
      if (!device_computes_bf16(device)) {
        throw Error("--amp-dtype", "bf16 needs a GPU of compute capability 8.0 or newer; " + device.str() + " is older",
                    "--amp-dtype fp16 or auto");
      }
      mp.dtype = at::kBFloat16;
      break;
    case AmpDtype::kAuto:
      mp.dtype = device_computes_bf16(device) ? at::kBFloat16 : at::kHalf;
      break;
  }
  return mp;
}

AutocastRegion::AutocastRegion(at::DeviceType device, bool enabled, at::ScalarType dtype, bool cache_enabled)
    : device_(device),
      was_enabled_(at::autocast::is_autocast_enabled(device)),
      was_dtype_(at::autocast::get_autocast_dtype(device)),
      was_cache_enabled_(at::autocast::is_autocast_cache_enabled()) {
  at::autocast::set_autocast_enabled(device, enabled);
  at::autocast::set_autocast_dtype(device, dtype);
  at::autocast::increment_nesting();
  at::autocast::set_autocast_cache_enabled(cache_enabled);
}

AutocastRegion::~AutocastRegion() {
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(device_, was_enabled_);
  at::autocast::set_autocast_dtype(device_, was_dtype_);
  at::autocast::set_autocast_cache_enabled(was_cache_enabled_);
}

}  // namespace aios
