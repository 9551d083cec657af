// The fused CUDA step of the blockwise 8-bit AdamW (optim/adamw_8bit.h), for float32
// parameters. Plain CUDA: no LibTorch header, so nvcc compiles only this kernel.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace aios {

// The step's rate and count are read from device memory by the kernel, not passed by value, so
// that a launch captured in a CUDA graph applies each replay's values.
struct Adamw8bitStep {
  const float* lr;    // device scalar: this step's learning rate
  const float* step;  // device scalar: t, the step count including this step (bias corrections)
  double beta1, beta2, eps, weight_decay;
};

// One 8-bit tensor's memory: param and grad [n] float32; codes [n] uint8; absmax [ceil(n / 256)].
struct Adamw8bitTensor {
  float* param;
  const float* grad;
  std::uint8_t* codes_avg;
  std::uint8_t* codes_avg_sq;
  float* absmax_avg;
  float* absmax_avg_sq;
  std::int64_t n;
};

// The two quantization maps (256 sorted float32 each) and their search tables (optim/code_search.h,
// code_search::kBuckets uint8 each), in device memory.
struct Adamw8bitMaps {
  const float* map_signed;
  const float* map_unsigned;
  const std::uint8_t* table_signed;
  const std::uint8_t* table_unsigned;
};

// The step of every tensor given, in as few launches as the kernel's argument space allows (one
// for up to kAdamw8bitTensorsPerLaunch tensors): each thread block loads the two maps and their
// search tables once, and each of its warps then takes 256-element quantization blocks of
// any tensor in turn, reading grad, param, both codes and both absmax once and writing param,
// codes and absmax once.
constexpr int kAdamw8bitTensorsPerLaunch = 48;
void launch_adamw_8bit(const Adamw8bitTensor* tensors, int count, const Adamw8bitMaps& maps, const Adamw8bitStep& step,
                       cudaStream_t stream);

}  // namespace aios
