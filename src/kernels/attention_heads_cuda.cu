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

// Grid: x covers one output row's 3·H·units 16-byte units (288 for GPT-2 in bf16), y strides over
// the B·T rows: the per-element index arithmetic is 32-bit (no 64-bit division per element), the
// stores are coalesced, and each run of a head's units (128 bytes for D = 64 in bf16) is read
// contiguously.
__global__ void __launch_bounds__(kThreads) interleave_heads_kernel(Parts parts, uint4* __restrict__ out, int heads,
                                                                    std::int64_t time, int units, std::int64_t rows) {
  const int per_row = 3 * heads * units;
  const int i = static_cast<int>(blockIdx.x) * kThreads + static_cast<int>(threadIdx.x);
  if (i >= per_row) return;
  const int unit = i % units, head = (i / units) % heads, s = i / (units * heads);
  // Selected, not indexed by s: a run-time index into a kernel parameter would copy it to local memory.
  const HeadStrides stride = s == 0 ? parts.strides[0] : s == 1 ? parts.strides[1] : parts.strides[2];
  const uint4* part = s == 0 ? parts.part[0] : s == 1 ? parts.part[1] : parts.part[2];
  for (std::int64_t row = blockIdx.y; row < rows; row += gridDim.y) {
    const std::int64_t b = row / time, t = row - b * time;
    out[row * per_row + i] = part[b * stride.batch + head * stride.head + t * stride.time + unit];
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
                             std::int64_t heads, std::int64_t time, std::int64_t head_bytes, std::int64_t element_bytes,
                             cudaStream_t stream) {
  const std::int64_t units = head_bytes / kUnit, rows = batch * time, per_row = 3 * heads * units;
  if (rows == 0 || per_row == 0) return;
  if (per_row > (1 << 30)) throw std::runtime_error("aios: attention heads kernel: rows wider than 2^30 units");
  Parts p;
  const std::int64_t per_unit = kUnit / element_bytes;
  for (int s = 0; s < 3; ++s) {
    p.part[s] = static_cast<const uint4*>(parts[s]);
    p.strides[s] = {strides[s].batch / per_unit, strides[s].head / per_unit, strides[s].time / per_unit};
  }
  const dim3 grid(static_cast<unsigned>((per_row + kThreads - 1) / kThreads),
                  static_cast<unsigned>(std::min<std::int64_t>(rows, 65535)));
  interleave_heads_kernel<<<grid, kThreads, 0, stream>>>(p, static_cast<uint4*>(out), static_cast<int>(heads), time,
                                                         static_cast<int>(units), rows);
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) {
    throw std::runtime_error(std::string("aios: attention heads kernel launch failed: ") + cudaGetErrorString(status));
  }
}

}  // namespace aios
