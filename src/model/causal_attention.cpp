#include "model/causal_attention.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>

#if AIOS_WITH_CUDA
#include <ATen/native/transformers/cuda/sdp_utils.h>
#endif

namespace aios {
namespace {

// ATen's flash kernel, called directly with is_causal, aligns the mask to the lower right when
// queries are fewer than keys. PyTorch's own causal_lower_right bias relies on this
// (torch/nn/attention/bias.py). Only where flash runs and the user has not switched it off
// (--attention efficient/math).
bool lower_right_flash_runs(const at::Tensor& q, const at::Tensor& keys, double dropout) {
#if AIOS_WITH_CUDA
  if (!q.is_cuda() || !at::globalContext().userEnabledFlashSDP() || q.size(-1) % 8 != 0) return false;
  // Values have the keys' shape and dtype, so the keys stand in for them in the check.
  const sdp::sdp_params params{q, keys, keys, std::nullopt, dropout, /*is_causal=*/false, /*enable_gqa=*/false};
  return sdp::can_use_flash_attention(params, /*debug=*/false);
#else
  (void)q, (void)keys, (void)dropout;
  return false;
#endif
}

}  // namespace

CudnnAttentionOff::CudnnAttentionOff() : was_on_(at::globalContext().userEnabledCuDNNSDP()) {
  auto& c = at::globalContext();
  if (was_on_ && (c.userEnabledFlashSDP() || c.userEnabledMemEfficientSDP() || c.userEnabledMathSDP())) {
    c.setSDPUseCuDNN(false);
  }
}

CudnnAttentionOff::~CudnnAttentionOff() { at::globalContext().setSDPUseCuDNN(was_on_); }

at::Tensor causal_attention_after_past(const at::Tensor& q, const at::Tensor& keys, const at::Tensor& values,
                                       double dropout) {
  if (lower_right_flash_runs(q, keys, dropout)) {
    return std::get<0>(at::_scaled_dot_product_flash_attention(q, keys, values, dropout, /*is_causal=*/true,
                                                               /*return_debug_mask=*/false));
  }
  // Elsewhere an explicit [T, past + T] mask, which keeps flash out (it takes no mask) and grows
  // with the window.
  const std::int64_t time = q.size(2), past = keys.size(2) - time;
  const auto positions = at::TensorOptions(q.device()).dtype(at::kLong);
  const auto mask =
      at::arange(past + time, positions).unsqueeze(0) <= (at::arange(time, positions) + past).unsqueeze(1);
  // cuDNN's attention with an explicit mask has given NaN gradients on Hopper (PyTorch issue
  // 196678, sequence lengths ≡ 64 mod 128): the masked call keeps to the other kernels.
  const CudnnAttentionOff no_cudnn;
  return at::scaled_dot_product_attention(q, keys, values, mask, dropout, /*is_causal=*/false);
}

std::string causal_attention_after_past_kernel(const at::Tensor& q, const at::Tensor& keys, double dropout) {
  return lower_right_flash_runs(q, keys, dropout) ? "flash (lower-right causal)"
                                                  : "SDPA with an explicit causal mask (no flash)";
}

}  // namespace aios
