#include "kernels/attention_heads.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#if AIOS_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>

#include "kernels/attention_heads_cuda.h"
#include "kernels/cuda_images.h"
#endif

namespace aios {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

#if AIOS_WITH_CUDA
// The kernel's view of three [B, H, T, D] gradients and the output they go to, when it takes them.
bool interleave_on_cuda(const variable_list& grads, at::Tensor& out) {
  const auto& first = grads[0];
  if (!first.is_cuda() || !own_kernels_run_on(first.device().index())) return false;
  const void* parts[3];
  HeadStrides strides[3];
  for (int s = 0; s < 3; ++s) {
    const auto& g = grads[s];
    if (g.scalar_type() != out.scalar_type() || g.stride(3) != 1 || g.sizes() != first.sizes()) {
      return false;
    }
    parts[s] = g.data_ptr();
    strides[s] = {g.stride(0), g.stride(1), g.stride(2)};
  }
  const std::int64_t element_bytes = static_cast<std::int64_t>(out.element_size());
  const std::int64_t head_bytes = first.size(3) * element_bytes;
  if (!interleave_heads_supported(parts, strides, out.data_ptr(), head_bytes, element_bytes)) return false;
  launch_interleave_heads(parts, strides, out.data_ptr(), first.size(0), first.size(1), first.size(2), head_bytes,
                          element_bytes, at::cuda::getCurrentCUDAStream(out.device().index()).stream());
  return true;
}
#endif

struct SplitHeads : public torch::autograd::Function<SplitHeads> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& qkv, std::int64_t heads) {
    const auto batch = qkv.size(0), time = qkv.size(1), width = qkv.size(2) / 3;
    ctx->saved_data["shape"] = qkv.sizes().vec();
    ctx->saved_data["heads"] = heads;
    const auto parts = qkv.view({batch, time, 3, heads, width / heads}).permute({2, 0, 3, 1, 4}).unbind(0);
    return {parts[0], parts[1], parts[2]};
  }

  // The three gradients are always defined: autograd materializes an unused head's as zeros.
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto shape = ctx->saved_data["shape"].toIntVector();
    const auto heads = ctx->saved_data["heads"].toInt();
    const auto batch = shape[0], time = shape[1], width = shape[2] / 3;
    auto grad = at::empty({batch, time, 3, heads, width / heads}, grads[0].options());
#if AIOS_WITH_CUDA
    if (interleave_on_cuda(grads, grad)) return {grad.view(shape), at::Tensor()};
#endif
    for (int s = 0; s < 3; ++s) grad.select(2, s).permute({0, 2, 1, 3}).copy_(grads[s]);  // [B, H, T, D] slots
    return {grad.view(shape), at::Tensor()};
  }
};

}  // namespace

std::array<at::Tensor, 3> split_heads(const at::Tensor& qkv, std::int64_t heads) {
  const auto parts = SplitHeads::apply(qkv, heads);
  return {parts[0], parts[1], parts[2]};
}

}  // namespace aios
