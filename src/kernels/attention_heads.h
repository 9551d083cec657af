// The query, key and value heads of a fused projection, as the attention kernels read them: the
// projection's [B, T, 3·C] output viewed as three [B, H, T, D] tensors, no copy. The backward writes
// the three heads' gradients into one [B, T, 3·C] tensor in one pass: on CUDA one kernel of 16-byte
// moves, elsewhere three strided copies (the reference). Autograd through the views themselves
// (unbind's backward stacks the three, then a copy undoes the permutation) moves each element twice,
// with a non-vectorized kernel each time: 3 ms of a GPT-2 step of 16 windows on an H200.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>

namespace aios {

std::array<at::Tensor, 3> split_heads(const at::Tensor& qkv, std::int64_t heads);

}  // namespace aios
