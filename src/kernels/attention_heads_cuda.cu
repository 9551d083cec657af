#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/attention_heads_cuda.h"

namespace aios {
namespace {

constexpr int kThreads = 256;
constexpr std::int64_t kUnit = 16;  // bytes per load and store

struct Parts {
  const uint4* part[3];
  HeadStrides strides[3];  // in 16-byte units
};

// One thread per 16 bytes of the output, in output order: the stores are fully coalesced and each
// run of a head's units (128 bytes for D = 64 in bf16) is read contiguously.
__global__ void __launch_bounds__(kThreads)
    interleave_heads_kernel(Parts parts, uint4* __restrict__ out, std::int64_t heads, std::int64_t time,
                            std::int64_t units, std::int64_t total) {
  for (std::int64_t index = static_cast<std::int64_t>(blockIdx.x) * kThreads + threadIdx.x; index < total;
       index += static_cast<std::int64_t>(gridDim.x) * kThreads) {
    std::int64_t rest = index;
    const std::int64_t unit = rest % units;
    rest /= units;
    const std::int64_t head = rest % heads;
    rest /= heads;
    const int s = static_cast<int>(rest % 3);
    rest /= 3;
    const std::int64_t t = rest % time, b = rest / time;
    const HeadStrides& stride = parts.strides[s];
    out[index] = parts.part[s][b * stride.batch + head * stride.head + t * stride.time + unit];
  }
}

}  // namespace

bool interleave_heads_supported(const void* const parts[3], const HeadStrides strides[3], const void* out,
                                std::int64_t head_bytes, std::int64_t element_bytes) {
  if (head_bytes % kUnit != 0 || reinterpret_cast<std::uintptr_t>(out) % kUnit != 0) return false;
  for (int s = 0; s < 3; ++s) {
    if (reinterpret_cast<std::uintptr_t>(parts[s]) % kUnit != 0) return false;
    for (const std::int64_t stride : {strides[s].batch, strides[s].head, strides[s].time}) {
      if (stride * element_bytes % kUnit != 0) return false;
    }
  }
  return true;
}

void launch_interleave_heads(const void* const parts[3], const HeadStrides strides[3], void* out, std::int64_t batch,
                             std::int64_t heads, std::int64_t time, std::int64_t head_bytes,
                             std::int64_t element_bytes, cudaStream_t stream) {
  const std::int64_t units = head_bytes / kUnit, total = batch * time * 3 * heads * units;
  if (total == 0) return;
  Parts p;
  const std::int64_t per_unit = kUnit / element_bytes;
  for (int s = 0; s < 3; ++s) {
    p.part[s] = static_cast<const uint4*>(parts[s]);
    p.strides[s] = {strides[s].batch / per_unit, strides[s].head / per_unit, strides[s].time / per_unit};
  }
  const std::int64_t blocks = std::min<std::int64_t>((total + kThreads - 1) / kThreads, 1 << 20);
  interleave_heads_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(p, static_cast<uint4*>(out), heads,
                                                                                   time, units, total);
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) {
    throw std::runtime_error(std::string("aios: attention heads kernel launch failed: ") + cudaGetErrorString(status));
  }
}

}  // namespace aios
