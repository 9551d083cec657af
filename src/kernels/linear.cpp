#include "kernels/linear.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/version.h>

#include <limits>

#include "kernels/bias_gradient.h"

#if AIOS_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <cublas_v2.h>
#endif

namespace aios {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Forward of both Functions below: every operand in the matmul type, the operands kept for the
// backward.
at::Tensor forward_linear(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  const at::ScalarType type = matmul_type(x);
  const auto xc = x.to(type), wc = weight.to(type);
  ctx->save_for_backward({xc, wc});
  ctx->saved_data["input_type"] = x.scalar_type();
  ctx->saved_data["weight_type"] = weight.scalar_type();
  if (bias.defined()) ctx->saved_data["bias_type"] = bias.scalar_type();
  return at::linear(xc, wc, bias.defined() ? bias.to(type) : at::Tensor());
}

// Backward of both: {input, weight, bias (when there is one)} gradients.
variable_list backward_linear(AutogradContext* ctx, const at::Tensor& grad_output, bool with_bias) {
  const auto saved = ctx->get_saved_variables();
  const at::Tensor &x = saved[0], &w = saved[1];
  const auto g = grad_output.to(w.scalar_type()).reshape({-1, w.size(0)});
  variable_list grads(with_bias ? 3 : 2);
  if (ctx->needs_input_grad(0))
    grads[0] = at::mm(g, w).view(x.sizes()).to(ctx->saved_data["input_type"].toScalarType());
  if (ctx->needs_input_grad(1)) {
    grads[1] = linear_weight_gradient(g, x.reshape({-1, x.size(-1)}), ctx->saved_data["weight_type"].toScalarType());
  }
  if (with_bias && ctx->needs_input_grad(2)) {
    grads[2] = linear_bias_gradient(g, ctx->saved_data["bias_type"].toScalarType());
  }
  return grads;
}

struct Linear : public torch::autograd::Function<Linear> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                               const at::Tensor& bias) {
    return {forward_linear(ctx, x, weight, bias)};
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    return backward_linear(ctx, grad_outputs[0], /*with_bias=*/true);
  }
};

// Autograd's custom Functions take no undefined tensor as an input: a layer without bias has its own.
struct LinearWithoutBias : public torch::autograd::Function<LinearWithoutBias> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight) {
    return {forward_linear(ctx, x, weight, at::Tensor())};
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    return backward_linear(ctx, grad_outputs[0], /*with_bias=*/false);
  }
};

}  // namespace

at::ScalarType matmul_type(const at::Tensor& x) {
  const auto device = x.device().type();
  return at::autocast::is_autocast_enabled(device) && x.scalar_type() == at::kFloat
             ? at::autocast::get_autocast_dtype(device)
             : x.scalar_type();
}

at::Tensor linear_weight_gradient(const at::Tensor& grad_output, const at::Tensor& x, at::ScalarType weight_type) {
  const auto type = grad_output.scalar_type();
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 8)
  // cuBLAS writes the float32 product of 16-bit operands itself (ATen's mm with out_dtype, 2.8+).
  if (grad_output.is_cuda() && weight_type == at::kFloat && (type == at::kBFloat16 || type == at::kHalf)) {
    return at::mm(grad_output.t(), x, at::kFloat);
  }
#endif
  return at::mm(grad_output.t(), x).to(weight_type);
}

at::Tensor linear_bias_gradient(const at::Tensor& grad_output, at::ScalarType bias_type) {
  return bias_gradient(grad_output, bias_type);
}

#if AIOS_WITH_CUDA
namespace {

// grad_weight += gᵀ·x on CUDA for 16-bit g and x and a float32 grad_weight, in one cuBLAS call that
// accumulates into it (β = 1, float32 accumulation): no float32 temporary of the whole weight and
// no separate add. ATen's addmm cannot, as its float32-output form wants 16-bit C. False when the
// layouts or types do not fit (the caller then takes ATen's way).
bool accumulate_in_float32(at::Tensor& grad_weight, const at::Tensor& g, const at::Tensor& x) {
  const auto type = g.scalar_type();
  if (!g.is_cuda() || grad_weight.scalar_type() != at::kFloat || (type != at::kBFloat16 && type != at::kHalf) ||
      x.scalar_type() != type || !grad_weight.is_contiguous() || !g.is_contiguous() || !x.is_contiguous() ||
      g.dim() != 2 || x.dim() != 2 || g.size(0) != x.size(0) || grad_weight.size(0) != g.size(1) ||
      grad_weight.size(1) != x.size(1)) {
    return false;
  }
  const auto rows = x.size(0), in = x.size(1), out = g.size(1);
  constexpr std::int64_t kMax = std::numeric_limits<int>::max();
  if (rows == 0) return true;
  if (rows > kMax || in > kMax || out > kMax) return false;
  // cuBLAS is column-major: row-major C [out, in] is Cᵀ [in, out] to it, and row-major x [rows, in]
  // and g [rows, out] are xᵀ [in, rows] and gᵀ [out, rows]. Cᵀ = xᵀ · g = xᵀ · (gᵀ)ᵀ: A = xᵀ as
  // stored, B = gᵀ transposed.
  const float alpha = 1.0f, beta = 1.0f;
  const cudaDataType_t data = type == at::kBFloat16 ? CUDA_R_16BF : CUDA_R_16F;
  const cublasStatus_t status =
      cublasGemmEx(at::cuda::getCurrentCUDABlasHandle(), CUBLAS_OP_N, CUBLAS_OP_T, static_cast<int>(in),
                   static_cast<int>(out), static_cast<int>(rows), &alpha, x.data_ptr(), data, static_cast<int>(in),
                   g.data_ptr(), data, static_cast<int>(out), &beta, grad_weight.data_ptr(), CUDA_R_32F,
                   static_cast<int>(in), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  TORCH_CHECK(status == CUBLAS_STATUS_SUCCESS,
              "aios: cublasGemmEx (weight gradient accumulation) failed: ", cublasGetStatusString(status));
  return true;
}

}  // namespace
#endif

void add_linear_weight_gradient(at::Tensor& grad_weight, const at::Tensor& grad_output, const at::Tensor& x) {
#if AIOS_WITH_CUDA
  if (accumulate_in_float32(grad_weight, grad_output, x)) return;
#endif
  if (grad_output.scalar_type() == grad_weight.scalar_type()) {
    grad_weight.addmm_(grad_output.t(), x);
  } else {
    grad_weight.add_(linear_weight_gradient(grad_output, x, grad_weight.scalar_type()));
  }
}

at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  return bias.defined() ? Linear::apply(x, weight, bias)[0] : LinearWithoutBias::apply(x, weight)[0];
}

}  // namespace aios
