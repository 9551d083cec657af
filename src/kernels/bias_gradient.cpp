#include "kernels/bias_gradient.h"

#include <ATen/ATen.h>

#if AIOS_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>

#include "kernels/aten_element_type.h"
#include "kernels/bias_gradient_cuda.h"
#include "kernels/cuda_images.h"
#endif

namespace aios {
namespace {

#if AIOS_WITH_CUDA
// other: pre for the GELU variant (same shape and type as g), else undefined.
bool kernel_runs(const at::Tensor& g, at::ScalarType bias_type, const at::Tensor& other) {
  const auto type = g.scalar_type();
  return g.is_cuda() && g.dim() == 2 && g.is_contiguous() && bias_type == at::kFloat &&
         (type == at::kBFloat16 || type == at::kHalf) &&
         (!other.defined() || (other.scalar_type() == type && other.is_contiguous() && other.sizes() == g.sizes())) &&
         bias_gradient_supported(g.size(1), element_type_of(type), g.data_ptr(),
                                 other.defined() ? other.data_ptr() : g.data_ptr(), g.data_ptr()) &&
         own_kernels_run_on(g.device().index());
}

cudaStream_t stream_of(const at::Tensor& t) { return at::cuda::getCurrentCUDAStream(t.device().index()).stream(); }

// Both launchers' outputs: the sums [width] and the scratch the kernels split the rows with.
std::pair<at::Tensor, at::Tensor> sums_and_scratch(const at::Tensor& g) {
  const auto options = g.options().dtype(at::kFloat);
  return {at::empty({g.size(1)}, options), at::empty({bias_gradient_scratch(g.size(0), g.size(1))}, options)};
}
#endif

}  // namespace

at::Tensor bias_gradient(const at::Tensor& grad_output, at::ScalarType bias_type) {
#if AIOS_WITH_CUDA
  if (kernel_runs(grad_output, bias_type, at::Tensor())) {
    auto [sums, scratch] = sums_and_scratch(grad_output);
    launch_bias_gradient(grad_output.data_ptr(), element_type_of(grad_output.scalar_type()), sums.data_ptr<float>(),
                         scratch.data_ptr<float>(), grad_output.size(0), grad_output.size(1), stream_of(grad_output));
    return sums;
  }
#endif
  return grad_output.sum(0, /*keepdim=*/false, bias_type);
}

std::pair<at::Tensor, at::Tensor> gelu_backward_and_bias_gradient(const at::Tensor& grad_h, const at::Tensor& pre,
                                                                  at::ScalarType bias_type) {
#if AIOS_WITH_CUDA
  if (kernel_runs(grad_h, bias_type, pre)) {
    auto grad_pre = at::empty_like(grad_h);
    auto [sums, scratch] = sums_and_scratch(grad_h);
    launch_gelu_backward_bias_gradient(grad_h.data_ptr(), pre.data_ptr(), element_type_of(grad_h.scalar_type()),
                                       grad_pre.data_ptr(), sums.data_ptr<float>(), scratch.data_ptr<float>(),
                                       grad_h.size(0), grad_h.size(1), stream_of(grad_h));
    return {grad_pre, sums};
  }
#endif
  auto grad_pre = at::gelu_backward(grad_h, pre, "tanh");
  auto sums = grad_pre.sum(0, /*keepdim=*/false, bias_type);
  return {grad_pre, sums};
}

const char* bias_gradient_path(const at::Tensor& grad_output, at::ScalarType bias_type) {
#if AIOS_WITH_CUDA
  if (kernel_runs(grad_output, bias_type, at::Tensor())) return "fused CUDA kernel";
#endif
  (void)grad_output;
  (void)bias_type;
  return "ATen";
}

}  // namespace aios
