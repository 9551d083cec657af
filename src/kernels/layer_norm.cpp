#include "kernels/layer_norm.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/csrc/autograd/custom_function.h>

#if AIOS_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>

#include "kernels/aten_element_type.h"
#include "kernels/cuda_images.h"
#include "kernels/layer_norm_cuda.h"
#endif

namespace aios {
namespace {

#if AIOS_WITH_CUDA
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

bool kernel_runs(const at::Tensor& x, const at::Tensor& weight) {
  return x.is_cuda() && x.scalar_type() == at::kFloat && weight.defined() && weight.scalar_type() == at::kFloat &&
         x.dim() >= 1 && layer_norm_width_supported(x.size(-1)) && own_kernels_run_on(x.device().index());
}

cudaStream_t stream_of(const at::Tensor& t) { return at::cuda::getCurrentCUDAStream(t.device().index()).stream(); }

// The output type: what the next matmul would cast it to under autocast, else float32.
at::ScalarType output_type(const at::Tensor& x) {
  const auto device = x.device().type();
  return at::autocast::is_autocast_enabled(device) ? at::autocast::get_autocast_dtype(device) : at::kFloat;
}

// The forward kernel on x (+ branch, if defined). Saves what the backward reads; returns
// {output, sum} (sum undefined without a branch).
std::pair<at::Tensor, at::Tensor> forward_kernel(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& branch,
                                                 const at::Tensor& weight, const at::Tensor& bias, double eps,
                                                 at::ScalarType out_type) {
  const std::int64_t width = x.size(-1);
  const auto rows_x = x.reshape({-1, width}).contiguous();
  const auto w = weight.contiguous(), b = bias.contiguous();
  const auto rows_branch = branch.defined() ? branch.reshape({-1, width}).contiguous() : at::Tensor();
  auto out = at::empty(rows_x.sizes(), x.options().dtype(out_type));
  auto sum = branch.defined() ? at::empty_like(rows_x) : at::Tensor();
  auto mean = at::empty({rows_x.size(0)}, x.options()), rstd = at::empty({rows_x.size(0)}, x.options());
  launch_layer_norm_forward(rows_x.data_ptr<float>(), branch.defined() ? rows_branch.data_ptr() : nullptr,
                            branch.defined() ? sum.data_ptr<float>() : nullptr, w.data_ptr<float>(),
                            b.data_ptr<float>(), out.data_ptr(), element_type_of(out_type), mean.data_ptr<float>(),
                            rstd.data_ptr<float>(), rows_x.size(0), width, static_cast<float>(eps), stream_of(x));
  ctx->save_for_backward({branch.defined() ? sum : rows_x, w, mean, rstd});
  ctx->saved_data["shape"] = x.sizes().vec();
  return {out.view(x.sizes()), branch.defined() ? sum.view(x.sizes()) : at::Tensor()};
}

struct Gradients {
  at::Tensor x, branch, weight, bias;
};

// The backward kernel: LayerNorm's gradients from grad_out, plus grad_residual (if defined) added
// into x's; branch_type: the type of the branch added in the forward (kUndefined: none).
Gradients backward_kernel(AutogradContext* ctx, const at::Tensor& grad_out, const at::Tensor& grad_residual,
                          at::ScalarType branch_type) {
  const auto saved = ctx->get_saved_variables();
  const at::Tensor &x = saved[0], &w = saved[1], &mean = saved[2], &rstd = saved[3];
  const std::int64_t width = x.size(1);
  const auto shape = ctx->saved_data["shape"].toIntVector();
  const auto rows_grad = grad_out.reshape({-1, width}).contiguous();
  const auto rows_residual = grad_residual.defined() ? grad_residual.reshape({-1, width}).contiguous() : at::Tensor();
  const ElementType grad_type = element_type_of(rows_grad.scalar_type());
  // The branch's gradient in its own type from the same kernel; a float32 branch shares x's.
  const bool branch_copy = branch_type != at::ScalarType::Undefined && branch_type != at::kFloat;
  Gradients grads{at::empty_like(x), branch_copy ? at::empty_like(rows_grad) : at::Tensor(), at::empty_like(w),
                  at::empty_like(w)};
  auto scratch = at::empty({layer_norm_backward_scratch(width, grad_type, grad_residual.defined())}, x.options());
  launch_layer_norm_backward(
      rows_grad.data_ptr(), grad_type, grad_residual.defined() ? rows_residual.data_ptr<float>() : nullptr,
      x.data_ptr<float>(), w.data_ptr<float>(), mean.data_ptr<float>(), rstd.data_ptr<float>(),
      grads.x.data_ptr<float>(), branch_copy ? grads.branch.data_ptr() : nullptr, grads.weight.data_ptr<float>(),
      grads.bias.data_ptr<float>(), scratch.data_ptr<float>(), x.size(0), width, stream_of(x));
  grads.x = grads.x.view(shape);
  if (branch_type != at::ScalarType::Undefined) grads.branch = branch_copy ? grads.branch.view(shape) : grads.x;
  return grads;
}

struct FusedLayerNorm : public torch::autograd::Function<FusedLayerNorm> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                               const at::Tensor& bias, double eps, at::ScalarType out_type) {
    return {forward_kernel(ctx, x, at::Tensor(), weight, bias, eps, out_type).first};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto grads = backward_kernel(ctx, grad_outputs[0], at::Tensor(), at::ScalarType::Undefined);
    return {grads.x, grads.weight, grads.bias, at::Tensor(), at::Tensor()};
  }
};

// Outputs {x, layer_norm(x)}: autograd gives the first output its own gradient edge (a view of
// the input), so both gradients arrive here and are summed by the backward kernel.
struct FusedLayerNormOfStream : public torch::autograd::Function<FusedLayerNormOfStream> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                               const at::Tensor& bias, double eps, at::ScalarType out_type) {
    return {x, forward_kernel(ctx, x, at::Tensor(), weight, bias, eps, out_type).first};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto grads = backward_kernel(ctx, grad_outputs[1], grad_outputs[0], at::ScalarType::Undefined);
    return {grads.x, grads.weight, grads.bias, at::Tensor(), at::Tensor()};
  }
};

// Outputs {x + branch, layer_norm(x + branch)}.
struct FusedAddLayerNorm : public torch::autograd::Function<FusedAddLayerNorm> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& branch,
                               const at::Tensor& weight, const at::Tensor& bias, double eps, at::ScalarType out_type) {
    ctx->saved_data["branch_type"] = static_cast<std::int64_t>(branch.scalar_type());
    auto [out, sum] = forward_kernel(ctx, x, branch, weight, bias, eps, out_type);
    return {sum, out};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto branch_type = static_cast<at::ScalarType>(ctx->saved_data["branch_type"].toInt());
    auto grads = backward_kernel(ctx, grad_outputs[1], grad_outputs[0], branch_type);
    return {grads.x, grads.branch, grads.weight, grads.bias, at::Tensor(), at::Tensor()};
  }
};
#endif

}  // namespace

at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps) {
#if AIOS_WITH_CUDA
  if (kernel_runs(x, weight) && bias.defined()) return FusedLayerNorm::apply(x, weight, bias, eps, output_type(x))[0];
#endif
  return at::layer_norm(x, {x.size(-1)}, weight, bias, eps);
}

NormedStream layer_norm_of_stream(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps) {
#if AIOS_WITH_CUDA
  if (kernel_runs(x, weight) && bias.defined()) {
    auto outputs = FusedLayerNormOfStream::apply(x, weight, bias, eps, output_type(x));
    return {outputs[0], outputs[1]};
  }
#endif
  return {x, at::layer_norm(x, {x.size(-1)}, weight, bias, eps)};
}

NormedStream add_and_layer_norm(const at::Tensor& x, const at::Tensor& branch, const at::Tensor& weight,
                                const at::Tensor& bias, double eps) {
#if AIOS_WITH_CUDA
  // The kernel reads the branch in the output's type (the type of the matmul that made it).
  if (kernel_runs(x, weight) && bias.defined() && branch.device() == x.device() && branch.sizes() == x.sizes() &&
      branch.scalar_type() == output_type(x)) {
    auto outputs = FusedAddLayerNorm::apply(x, branch, weight, bias, eps, output_type(x));
    return {outputs[0], outputs[1]};
  }
#endif
  auto sum = x + branch;
  return {sum, at::layer_norm(sum, {sum.size(-1)}, weight, bias, eps)};
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
