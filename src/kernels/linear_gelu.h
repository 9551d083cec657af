// h = gelu(x · Wᵀ + b), GELU in its tanh approximation: GPT-2's MLP up-projection and activation
// as one autograd Function, keeping GELU's input for the backward as autograd would.
// On CUDA for 16-bit operands the forward is one cuBLASLt matmul whose epilogue adds the bias,
// keeps GELU's input and applies GELU (no separate GELU kernel; the output rounded to 16 bits once,
// not twice), and the backward takes GELU's gradient and the bias gradient in one pass
// (kernels/bias_gradient.h), where autograd ran a gelu_backward kernel and then read its output
// again for the bias's column sum. Elsewhere, and where cuBLASLt offers no algorithm: the GEMM of
// kernels/linear.h (bias in its epilogue), ATen's gelu and gelu_backward, the reference path.
// Weight and input gradients as linear's backward forms them (float32 parameter gradients under
// autocast).
#pragma once

#include <ATen/core/Tensor.h>

namespace aios {

// x: [..., in]; weight: [out, in]; bias: [out]. Returns [..., out] in the matmul type.
at::Tensor linear_gelu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

}  // namespace aios
