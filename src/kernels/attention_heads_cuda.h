// The CUDA kernel behind kernels/attention_heads.h: the gradients of the query, key and value heads
// written into the one [B, T, 3, H, D] layout of the projection that made them. Plain CUDA.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace aios {

// The strides of a [B, H, T, D] head tensor, in elements (its last dimension is contiguous).
struct HeadStrides {
  std::int64_t batch, head, time;
};

// Whether the kernel takes these tensors: every pointer and stride a multiple of 16 bytes, so each
// thread moves 16 bytes (8 bf16 values) at a time.
bool interleave_heads_supported(const void* const parts[3], const HeadStrides strides[3], const void* out,
                                std::int64_t head_bytes, std::int64_t element_bytes);

// out[b, t, s, h, :] = parts[s][b, h, t, :] for s = 0, 1, 2 (queries, keys, values); out is
// contiguous [batch, time, 3, heads, head_bytes / element_bytes]. A byte copy, so any element type.
void launch_interleave_heads(const void* const parts[3], const HeadStrides strides[3], void* out, std::int64_t batch,
                             std::int64_t heads, std::int64_t time, std::int64_t head_bytes, std::int64_t element_bytes,
                             cudaStream_t stream);

}  // namespace aios
