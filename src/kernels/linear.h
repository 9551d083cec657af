// y = x · Wᵀ + b, as at::linear computes it (under autocast in the autocast type, the bias added in
// the GEMM's epilogue), with a backward that writes the weight and bias gradients straight in the
// parameters' type: on CUDA the weight gradient's GEMM writes float32 and the bias gradient is summed
// into float32, where autograd through at::linear under autocast forms both in bf16 and then runs a
// cast kernel per parameter (about 100 per GPT-2 124M step) to bring them to the float32 parameters.
// No bias (Llama's linears) is allowed. Not specific to GPT-2.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

namespace aios {

at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

// The type a matmul on `x` runs in: under autocast the autocast type for float32 input (autocast's
// rule for linear and matmul; float64 stays float64), else x's own.
at::ScalarType matmul_type(const at::Tensor& x);

// The parameters' gradients as linear's backward forms them, from the output's gradient
// grad_output [N, out] and the input x [N, in] in the matmul type: gᵀ·x and Σ over rows of g, each
// in the parameter's type (float32 written by the GEMM or the sum itself, no 16-bit rounding first).
// Activation checkpointing's hand-differentiated last layer of a block, and the fused classifier's
// weight gradient, use them too.
at::Tensor linear_weight_gradient(const at::Tensor& grad_output, const at::Tensor& x, at::ScalarType weight_type);
at::Tensor linear_bias_gradient(const at::Tensor& grad_output, at::ScalarType bias_type);

// grad_weight += gᵀ·x in grad_weight's type, for a weight gradient summed over chunks of rows (the
// fused classifier): in one addmm where the operands have grad_weight's type, else the product as
// linear_weight_gradient forms it, added.
void add_linear_weight_gradient(at::Tensor& grad_weight, const at::Tensor& grad_output, const at::Tensor& x);

}  // namespace aios
