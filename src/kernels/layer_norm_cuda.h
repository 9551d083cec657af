// LayerNorm's CUDA kernels for rows of float32 activations (the residual stream under autocast):
// the forward writes its output straight in the matmul type (no separate cast kernel) and keeps
// each row's mean and 1/std; the backward takes the output's gradient in that type and writes the
// input's gradient in float32, the weight and bias gradients summed over rows in a fixed order
// (deterministic). One warp per row, the row held in registers: widths 32·K for the K in
// layer_norm_width_supported (GPT-2's 768, 1024, 1280 and 1600 among them). Plain CUDA.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/element_type.h"

namespace aios {

bool layer_norm_width_supported(std::int64_t width);

// x: [rows, width] float32; weight, bias: [width] float32; out: [rows, width] of out_type;
// mean, rstd: [rows] float32.
void launch_layer_norm_forward(const float* x, const float* weight, const float* bias, void* out, ElementType out_type,
                               float* mean, float* rstd, std::int64_t rows, std::int64_t width, float eps,
                               cudaStream_t stream);

// Float32 elements of scratch space the backward needs on the current device.
std::int64_t layer_norm_backward_scratch(std::int64_t width, ElementType grad_type);

// grad_out: [rows, width] of grad_type; x, mean, rstd as saved by the forward; grad_x: [rows,
// width] float32; grad_weight, grad_bias: [width] float32 (overwritten); scratch: the elements
// layer_norm_backward_scratch asked for.
void launch_layer_norm_backward(const void* grad_out, ElementType grad_type, const float* x, const float* weight,
                                const float* mean, const float* rstd, float* grad_x, float* grad_weight,
                                float* grad_bias, float* scratch, std::int64_t rows, std::int64_t width,
                                cudaStream_t stream);

}  // namespace aios
