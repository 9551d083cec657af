// LayerNorm over the last dimension, as torch::nn::LayerNorm computes it. On CUDA, for float32
// input and parameters of a width the kernels are built for, one kernel each way (kernels/
// layer_norm_cuda.h): under autocast the output comes out directly in the autocast type, which is
// what the matmul that reads it would cast it to (so the cast kernel and its backward disappear),
// and the backward's weight and bias gradients are summed in the same kernels. Elsewhere ATen's
// layer_norm (float32 output under autocast, as autocast's own rule for it), the reference.
//
// A pre-norm block reads the residual stream twice: through a LayerNorm into its branch, and as is
// into the add that closes the branch. The two functions below give the kernels the stream too, so
// that the add and the gradient sums the stream needs run inside LayerNorm's kernels instead of as
// separate elementwise kernels; elsewhere they are the plain add and layer_norm.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace aios {

at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps);

// The residual stream and its LayerNorm.
struct NormedStream {
  at::Tensor stream;  // the residual stream, to be carried on (the branch's output is added to it)
  at::Tensor normed;  // layer_norm(stream): the branch's input
};

// {x, layer_norm(x)}. The stream comes back as a view of x whose gradient the LayerNorm backward
// adds to the normalized output's in its own kernel (where autograd would add the two with one
// more kernel).
NormedStream layer_norm_of_stream(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps);

// {x + branch, layer_norm(x + branch)}: on CUDA the add and the normalization in one kernel, and
// the backward writes both inputs' gradients (the branch's in its own type) in one kernel too.
NormedStream add_and_layer_norm(const at::Tensor& x, const at::Tensor& branch, const at::Tensor& weight,
                                const at::Tensor& bias, double eps);

// Which implementation layer_norm uses for an input like `x`: "fused CUDA kernel" or "ATen".
std::string layer_norm_path(const at::Tensor& x, const at::Tensor& weight);

}  // namespace aios
