// Column sums of a linear layer's output gradient, [rows, width] in bf16 or fp16, into float32
// [width]: the layer's bias gradient, in a fixed order (deterministic). Optionally fused with the
// backward of the tanh-approximated GELU that follows the layer (GPT-2's MLP): from GELU's input
// `pre` and its output's gradient, the same pass writes the layer's output gradient
// grad_pre = grad_out · gelu'(pre), rounded to the 16-bit type, and sums those rounded values (the
// ones the weight gradient's GEMM reads). Each lane reads 8 values of a row in one 16-byte access;
// blocks of 256 columns split the rows between them, their float32 partial sums added by a second,
// small kernel. Widths that are a multiple of 8, tensors 16-byte aligned (bias_gradient_supported).
// Plain CUDA.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/element_type.h"

namespace aios {

// Whether the kernels take this shape, type and these pointers (null pointers are not asked about).
bool bias_gradient_supported(std::int64_t width, ElementType type, const void* a, const void* b, const void* c);

// Float32 elements of scratch space the kernels need for this shape on the current device.
std::int64_t bias_gradient_scratch(std::int64_t rows, std::int64_t width);

// grad: [rows, width] of `type`; grad_bias: [width] float32, overwritten.
void launch_bias_gradient(const void* grad, ElementType type, float* grad_bias, float* scratch, std::int64_t rows,
                          std::int64_t width, cudaStream_t stream);

// grad_out, pre, grad_pre: [rows, width] of `type`; grad_bias: [width] float32, overwritten with
// the column sums of grad_pre.
void launch_gelu_backward_bias_gradient(const void* grad_out, const void* pre, ElementType type, void* grad_pre,
                                        float* grad_bias, float* scratch, std::int64_t rows, std::int64_t width,
                                        cudaStream_t stream);

}  // namespace aios
