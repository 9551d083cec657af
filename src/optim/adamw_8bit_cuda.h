// The fused CUDA step of the blockwise 8-bit AdamW (optim/adamw_8bit.h), for float32
// parameters. Plain CUDA: no LibTorch header, so nvcc compiles only this kernel.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace aios {

struct Adamw8bitStep {
  double lr, beta1, beta2, eps, weight_decay;
  double bias_correction1;       // 1 − β1^t
  double sqrt_bias_correction2;  // √(1 − β2^t)
};

// One thread block per 256-element quantization block: reads grad, param, both codes and both
// absmax once; writes param, codes and absmax once. maps: 256 float32 each (signed, unsigned).
void launch_adamw_8bit(float* param, const float* grad, std::uint8_t* codes_avg, std::uint8_t* codes_avg_sq,
                       float* absmax_avg, float* absmax_avg_sq, const float* map_signed, const float* map_unsigned,
                       std::int64_t n, const Adamw8bitStep& step, cudaStream_t stream);

}  // namespace aios
