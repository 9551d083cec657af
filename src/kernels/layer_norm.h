// LayerNorm over the last dimension, as torch::nn::LayerNorm computes it. On CUDA, for float32
// input and parameters of a width the kernels are built for, one kernel each way (kernels/
// layer_norm_cuda.h): under autocast the output comes out directly in the autocast type, which is
// what the matmul that reads it would cast it to (so the cast kernel and its backward disappear),
// and the backward's weight and bias gradients are summed in the same kernels. Elsewhere ATen's
// layer_norm (float32 output under autocast, as autocast's own rule for it), the reference.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace aios {

at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps);

// Which implementation layer_norm uses for an input like `x`: "fused CUDA kernel" or "ATen".
std::string layer_norm_path(const at::Tensor& x, const at::Tensor& weight);

}  // namespace aios
