// LayerNorm's CUDA kernels for rows of float32 activations (the residual stream under autocast):
// the forward writes its output straight in the matmul type (no separate cast kernel) and keeps
// each row's mean and 1/std; the backward takes the output's gradient in that type and writes the
// input's gradient in float32, the weight and bias gradients summed over rows in a fixed order
// (deterministic). Fused with the residual stream around it: the forward can add a branch into
// the stream and normalize the sum in one pass, the backward add the stream's own gradient into
// the input's. One warp per row, the row held in registers: widths 32·K for the K in
// layer_norm_width_supported (GPT-2's 768, 1024, 1280 and 1600 among them). Plain CUDA.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/element_type.h"

namespace aios {

bool layer_norm_width_supported(std::int64_t width);

// x: [rows, width] float32; weight, bias: [width] float32; out: [rows, width] of out_type;
// mean, rstd: [rows] float32. branch (null: none): [rows, width] of out_type, added to x before
// the normalization, the sum written to sum_out ([rows, width] float32) in the same pass.
void launch_layer_norm_forward(const float* x, const void* branch, float* sum_out, const float* weight,
                               const float* bias, void* out, ElementType out_type, float* mean, float* rstd,
                               std::int64_t rows, std::int64_t width, float eps, cudaStream_t stream);

// Float32 elements of scratch space the backward needs on the current device (residual: whether
// it will be given a grad_residual).
std::int64_t layer_norm_backward_scratch(std::int64_t width, ElementType grad_type, bool residual);

// grad_out: [rows, width] of grad_type; x (the normalized input), mean, rstd as saved by the
// forward; grad_x: [rows, width] float32; grad_weight, grad_bias: [width] float32 (overwritten);
// scratch: the elements layer_norm_backward_scratch asked for. grad_residual (null: none): the
// gradient that reached x by the residual stream, added into grad_x; grad_branch (null: none):
// [rows, width] of grad_type, receives grad_x rounded to that type.
void launch_layer_norm_backward(const void* grad_out, ElementType grad_type, const float* grad_residual, const float* x,
                                const float* weight, const float* mean, const float* rstd, float* grad_x,
                                void* grad_branch, float* grad_weight, float* grad_bias, float* scratch,
                                std::int64_t rows, std::int64_t width, cudaStream_t stream);

}  // namespace aios
