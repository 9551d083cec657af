// A linear layer's bias gradient, the sum over rows of its output's gradient, in the bias's type;
// and the same fused with the backward of a tanh-approximated GELU after the layer (GPT-2's MLP).
// On CUDA, for a 16-bit gradient and a float32 bias, aios's column-sum kernels
// (bias_gradient_cuda.h): one bandwidth-bound pass, fixed summation order; the GELU variant also
// writes GELU's input gradient in that pass instead of a separate gelu_backward kernel. Elsewhere,
// and on a GPU without the kernels' image, ATen's sum and gelu_backward: the reference path.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include <utility>

namespace aios {

// grad_output: [N, out]. Returns [out] of bias_type.
at::Tensor bias_gradient(const at::Tensor& grad_output, at::ScalarType bias_type);

// grad_h: the gradient of gelu(pre), [N, out]; pre: GELU's input, [N, out], of grad_h's type.
// Returns {grad_pre = grad_h · gelu'(pre) in grad_h's type, its column sums [out] of bias_type}.
std::pair<at::Tensor, at::Tensor> gelu_backward_and_bias_gradient(const at::Tensor& grad_h, const at::Tensor& pre,
                                                                  at::ScalarType bias_type);

// Tests: which path bias_gradient takes for this gradient ("fused CUDA kernel" or "ATen").
const char* bias_gradient_path(const at::Tensor& grad_output, at::ScalarType bias_type);

}  // namespace aios
