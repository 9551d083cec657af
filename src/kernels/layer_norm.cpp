#include "kernels/layer_norm.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/csrc/autograd/custom_function.h>

#if AIOS_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>

#include "kernels/aten_element_type.h"
#include "kernels/layer_norm_cuda.h"
#endif

namespace aios {
namespace {

#if AIOS_WITH_CUDA
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

bool kernel_runs(const at::Tensor& x, const at::Tensor& weight) {
  return x.is_cuda() && x.scalar_type() == at::kFloat && weight.defined() && weight.scalar_type() == at::kFloat &&
         x.dim() >= 1 && layer_norm_width_supported(x.size(-1));
}

cudaStream_t stream_of(const at::Tensor& t) { return at::cuda::getCurrentCUDAStream(t.device().index()).stream(); }

struct FusedLayerNorm : public torch::autograd::Function<FusedLayerNorm> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                               const at::Tensor& bias, double eps, at::ScalarType out_type) {
    const std::int64_t width = x.size(-1);
    const auto rows_x = x.reshape({-1, width}).contiguous();
    const auto w = weight.contiguous(), b = bias.contiguous();
    auto out = at::empty(rows_x.sizes(), x.options().dtype(out_type));
    auto mean = at::empty({rows_x.size(0)}, x.options()), rstd = at::empty({rows_x.size(0)}, x.options());
    launch_layer_norm_forward(rows_x.data_ptr<float>(), w.data_ptr<float>(), b.data_ptr<float>(), out.data_ptr(),
                              element_type_of(out_type), mean.data_ptr<float>(), rstd.data_ptr<float>(), rows_x.size(0),
                              width, static_cast<float>(eps), stream_of(x));
    ctx->save_for_backward({rows_x, w, mean, rstd});
    ctx->saved_data["shape"] = x.sizes().vec();
    return {out.view(x.sizes())};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &w = saved[1], &mean = saved[2], &rstd = saved[3];
    const std::int64_t width = x.size(1);
    const auto grad_out = grad_outputs[0].reshape({-1, width}).contiguous();
    const ElementType grad_type = element_type_of(grad_out.scalar_type());
    auto grad_x = at::empty_like(x), grad_w = at::empty_like(w), grad_b = at::empty_like(w);
    auto scratch = at::empty({layer_norm_backward_scratch(width, grad_type)}, x.options());
    launch_layer_norm_backward(grad_out.data_ptr(), grad_type, x.data_ptr<float>(), w.data_ptr<float>(),
                               mean.data_ptr<float>(), rstd.data_ptr<float>(), grad_x.data_ptr<float>(),
                               grad_w.data_ptr<float>(), grad_b.data_ptr<float>(), scratch.data_ptr<float>(), x.size(0),
                               width, stream_of(x));
    return {grad_x.view(ctx->saved_data["shape"].toIntVector()), grad_w, grad_b, at::Tensor(), at::Tensor()};
  }
};
#endif

}  // namespace

at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps) {
#if AIOS_WITH_CUDA
  if (kernel_runs(x, weight) && bias.defined()) {
    const auto device = x.device().type();
    const auto out_type =
        at::autocast::is_autocast_enabled(device) ? at::autocast::get_autocast_dtype(device) : at::kFloat;
    return FusedLayerNorm::apply(x, weight, bias, eps, out_type)[0];
  }
#endif
  return at::layer_norm(x, {x.size(-1)}, weight, bias, eps);
}

std::string layer_norm_path(const at::Tensor& x, const at::Tensor& weight) {
#if AIOS_WITH_CUDA
  if (kernel_runs(x, weight)) return "fused CUDA kernel";
#else
  (void)x, (void)weight;
#endif
  return "ATen";
}

}  // namespace aios
