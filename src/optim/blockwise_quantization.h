// Blockwise 8-bit quantization of optimizer state (Dettmers et al. 2021, "8-bit Optimizers via
// Block-wise Quantization"; bitsandbytes' current block size): a tensor is cut into blocks
// of 256 elements, each normalized by its own absolute maximum (one fp32 per block) and each
// value stored as the index of the nearest entry of a 256-entry "dynamic" code.
//
// The dynamic code packs a 7-decade exponent range (1e-6 .. 1) with more fraction points in the
// larger decades. The signed code (first moment) has 127 negative and 127 positive values, 0 and
// 1; the unsigned code (second moment, never negative) spends the sign bit on one more fraction
// bit. Same formula as bitsandbytes' create_dynamic_map (and torchao's copy of it).
//
// Rounding: nearest code, ties to the larger code; the same rule in the CPU reference below and
// the CUDA kernel (optim/adamw_8bit_cuda.cu), so both produce the same codes.
#pragma once

#include <ATen/core/Tensor.h>

namespace aios {

constexpr std::int64_t kQuantizationBlock = 256;

// The 256 sorted float32 values of the dynamic code, on the CPU.
at::Tensor dynamic_quantization_map(bool is_signed);

// The search table of optim/code_search.h for a sorted float32 map of 256 entries: uint8
// [code_search::kBuckets], on the CPU. Entry b: the first map entry >= the smallest value of
// bucket b (its infimum, for the open lower end of a negative bucket).
at::Tensor code_search_table(const at::Tensor& map);

struct BlockwiseQuantized {
  at::Tensor codes;   // uint8 [n]: index into the map
  at::Tensor absmax;  // float32 [ceil(n / 256)]: each block's largest |value|
};

// Quantizes the flattened float values (any device) with `map` (on the same device).
BlockwiseQuantized quantize_blockwise(const at::Tensor& values, const at::Tensor& map);
// Into preallocated codes/absmax (the optimizer's state), no new state tensors.
void quantize_blockwise_into(const at::Tensor& values, const at::Tensor& map, at::Tensor& codes, at::Tensor& absmax);
// float32 [n] from codes and absmax.
at::Tensor dequantize_blockwise(const at::Tensor& codes, const at::Tensor& absmax, const at::Tensor& map);

}  // namespace aios
