#include "model/rotary.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

namespace aios {

at::Tensor RotaryTable::rotate(const at::Tensor& x, std::int64_t start) {
  const std::int64_t time = x.size(-2), head_dim = x.size(-1), half = head_dim / 2;
  at::Tensor cos, sin;
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    const Key key{start, time, head_dim, x.scalar_type(), x.device(), c10::InferenceMode::is_enabled()};
    if (key_ != key) {
      // Angles in float64: at 64k positions a float32 angle is off by ~4e-3 rad.
      const auto doubles = x.options().dtype(at::kDouble);
      const auto inv_freq = at::pow(theta_, -at::arange(0, half, doubles) * (2.0 / static_cast<double>(head_dim)));
      const auto angles = at::outer(at::arange(start, start + time, doubles), inv_freq);  // [T, half]
      const auto c = angles.cos(), s = angles.sin();
      cos_ = at::cat({c, c}, -1).to(x.scalar_type());
      sin_ = at::cat({-s, s}, -1).to(x.scalar_type());
      key_ = key;
    }
    cos = cos_, sin = sin_;
  }
  // (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin) as x · (cos, cos) + (x2, x1) · (-sin, sin):
  // four kernels, and the same roundings as the two-halves form (a - b equals a + (-b)). The
  // halves swap by a flip, whose backward is one flip; narrowing the halves apart would zero-fill
  // and add two full-size gradients.
  const auto swapped = x.unflatten(-1, {2, half}).flip(-2).flatten(-2);
  return x * cos + swapped * sin;
}

at::Tensor apply_rotary(const at::Tensor& x, std::int64_t start, double theta) {
  return RotaryTable(theta).rotate(x, start);
}

}  // namespace aios
