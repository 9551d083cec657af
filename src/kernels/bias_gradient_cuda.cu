#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/bias_gradient_cuda.h"
#include "kernels/cuda_math.cuh"

namespace aios {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kVector = 8;            // 16-bit values in one 16-byte access
constexpr int kStrip = 32 * kVector;  // columns one block sums: a warp's 32 lanes of 8
constexpr std::int64_t kMinRowsPerWarp = 8;

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw std::runtime_error(std::string("aios: ") + what + ": " + cudaGetErrorString(status));
}

int multiprocessors() {
  int device = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  static std::atomic<int> counts[64] = {};
  if (device < 64 && counts[device].load() > 0) return counts[device].load();
  int count = 0;
  check(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute");
  if (device < 64) counts[device].store(count);
  return count;
}

// How many row ranges the blocks of one column strip split the rows into: about four blocks per
// multiprocessor in all, and at least kMinRowsPerWarp rows for every warp. One range needs no
// second kernel.
std::int64_t row_splits(std::int64_t rows, std::int64_t width) {
  const std::int64_t strips = (width + kStrip - 1) / kStrip;
  const std::int64_t wanted = (4 * static_cast<std::int64_t>(multiprocessors()) + strips - 1) / strips;
  const std::int64_t most = std::max<std::int64_t>(1, rows / (kWarps * kMinRowsPerWarp));
  return std::clamp<std::int64_t>(wanted, 1, std::min<std::int64_t>(most, 65535));
}

// d/dx of 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), GPT-2's GELU, in float32 (as ATen's
// gelu_backward for 16-bit tensors, up to the tanh below).
__device__ __forceinline__ float gelu_tanh_derivative(float x) {
  constexpr float kAlpha = 0.7978845608028654f;  // √(2/π)
  constexpr float kCubic = 0.044715f;
  const float x_squared = x * x;
  // tanh(u) = 1 − 2 / (1 + e^(2u)) with the hardware exponential and division: absolute error
  // about 1e-7, far below the 16-bit rounding of the result, in a few instructions where tanhf
  // takes enough to make this pass compute-bound. e^(2u) overflowing to inf gives t = 1.
  const float u = kAlpha * (x + kCubic * (x_squared * x));
  const float t = 1.f - __fdividef(2.f, 1.f + __expf(2.f * u));
  return 0.5f * (1.f + t) + (0.5f * x) * (1.f - t * t) * (kAlpha * (1.f + 3.f * kCubic * x_squared));
}

// Block (x, y) sums columns [256·x, 256·x + 256) over its range y of rows: lane l of each warp holds
// columns 8·l to 8·l + 7, warp w takes rows w, w + 8, ...; the 8 warps' sums are added in
// shared memory in a fixed order and written to partial[y, column].
template <typename T, bool kGelu>
__device__ __forceinline__ void column_partial_sums(const T* __restrict__ grad, const T* __restrict__ pre,
                                                    T* __restrict__ grad_pre, float* __restrict__ partial,
                                                    std::int64_t rows, std::int64_t width,
                                                    std::int64_t rows_per_split) {
  __shared__ float sums[kWarps][kStrip];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const std::int64_t column = static_cast<std::int64_t>(blockIdx.x) * kStrip + lane * kVector;
  const std::int64_t first = static_cast<std::int64_t>(blockIdx.y) * rows_per_split;
  const std::int64_t last = first + rows_per_split < rows ? first + rows_per_split : rows;
  float acc[kVector] = {};
  if (column < width) {
#pragma unroll 4
    for (std::int64_t row = first + warp; row < last; row += kWarps) {
      const std::int64_t at = row * width + column;
      const uint4 g = *reinterpret_cast<const uint4*>(grad + at);
      const T* gv = reinterpret_cast<const T*>(&g);
      if constexpr (kGelu) {
        const uint4 p = *reinterpret_cast<const uint4*>(pre + at);
        const T* pv = reinterpret_cast<const T*>(&p);
        uint4 d;
        T* dv = reinterpret_cast<T*>(&d);
#pragma unroll
        for (int k = 0; k < kVector; ++k) {
          dv[k] = from_float<T>(to_float(gv[k]) * gelu_tanh_derivative(to_float(pv[k])));
          acc[k] += to_float(dv[k]);
        }
        *reinterpret_cast<uint4*>(grad_pre + at) = d;
      } else {
#pragma unroll
        for (int k = 0; k < kVector; ++k) acc[k] += to_float(gv[k]);
      }
    }
  }
#pragma unroll
  for (int k = 0; k < kVector; ++k) sums[warp][lane * kVector + k] = acc[k];
  __syncthreads();
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * kStrip + threadIdx.x;
  if (c >= width) return;
  float total = 0.f;
#pragma unroll
  for (int w = 0; w < kWarps; ++w) total += sums[w][threadIdx.x];
  partial[blockIdx.y * width + c] = total;
}

// The two kernels, named for what they do (as profiles show them).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    column_sums(const T* __restrict__ grad, float* __restrict__ partial, std::int64_t rows, std::int64_t width,
                std::int64_t rows_per_split) {
  column_partial_sums<T, false>(grad, nullptr, nullptr, partial, rows, width, rows_per_split);
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    gelu_backward_column_sums(const T* __restrict__ grad, const T* __restrict__ pre, T* __restrict__ grad_pre,
                              float* __restrict__ partial, std::int64_t rows, std::int64_t width,
                              std::int64_t rows_per_split) {
  column_partial_sums<T, true>(grad, pre, grad_pre, partial, rows, width, rows_per_split);
}

// out[c] = Σ over y of partial[y, c]: a block of 32 columns × 8 lanes of splits, lane y taking
// splits y, y + 8, ..., the 8 sums added in order (deterministic).
constexpr int kAddLanes = 8;
__global__ void __launch_bounds__(32 * kAddLanes)
    add_partial_column_sums(const float* __restrict__ partial, float* __restrict__ out, std::int64_t splits,
                            std::int64_t width) {
  __shared__ float sums[kAddLanes][32];
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * 32 + threadIdx.x;
  float total = 0.f;
  if (c < width) {
    for (std::int64_t y = threadIdx.y; y < splits; y += kAddLanes) total += partial[y * width + c];
  }
  sums[threadIdx.y][threadIdx.x] = total;
  __syncthreads();
  if (threadIdx.y != 0 || c >= width) return;
  total = 0.f;
#pragma unroll
  for (int y = 0; y < kAddLanes; ++y) total += sums[y][threadIdx.x];
  out[c] = total;
}

template <typename T, bool kGelu>
void launch(const void* grad, const void* pre, void* grad_pre, float* grad_bias, float* scratch, std::int64_t rows,
            std::int64_t width, cudaStream_t stream) {
  if (rows == 0) {
    check(cudaMemsetAsync(grad_bias, 0, sizeof(float) * width, stream), "cudaMemsetAsync");
    return;
  }
  const std::int64_t splits = row_splits(rows, width);
  const std::int64_t rows_per_split = (rows + splits - 1) / splits;
  const dim3 grid(static_cast<unsigned>((width + kStrip - 1) / kStrip), static_cast<unsigned>(splits));
  float* partial = splits == 1 ? grad_bias : scratch;
  if constexpr (kGelu) {
    gelu_backward_column_sums<T><<<grid, kThreads, 0, stream>>>(static_cast<const T*>(grad), static_cast<const T*>(pre),
                                                                static_cast<T*>(grad_pre), partial, rows, width,
                                                                rows_per_split);
  } else {
    column_sums<T><<<grid, kThreads, 0, stream>>>(static_cast<const T*>(grad), partial, rows, width, rows_per_split);
  }
  check(cudaGetLastError(), "bias gradient kernel");
  if (splits == 1) return;
  add_partial_column_sums<<<static_cast<unsigned>((width + 31) / 32), dim3(32, kAddLanes), 0, stream>>>(
      scratch, grad_bias, splits, width);
  check(cudaGetLastError(), "bias gradient sum kernel");
}

bool aligned(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

}  // namespace

bool bias_gradient_supported(std::int64_t width, ElementType type, const void* a, const void* b, const void* c) {
  return type != ElementType::kFloat32 && width > 0 && width % kVector == 0 && aligned(a) && aligned(b) && aligned(c);
}

std::int64_t bias_gradient_scratch(std::int64_t rows, std::int64_t width) {
  if (rows == 0) return 0;
  const std::int64_t splits = row_splits(rows, width);
  return splits == 1 ? 0 : splits * width;
}

void launch_bias_gradient(const void* grad, ElementType type, float* grad_bias, float* scratch, std::int64_t rows,
                          std::int64_t width, cudaStream_t stream) {
  if (type == ElementType::kBFloat16) {
    launch<__nv_bfloat16, false>(grad, nullptr, nullptr, grad_bias, scratch, rows, width, stream);
  } else if (type == ElementType::kFloat16) {
    launch<__half, false>(grad, nullptr, nullptr, grad_bias, scratch, rows, width, stream);
  } else {
    throw std::invalid_argument("aios: launch_bias_gradient: a 16-bit gradient expected");
  }
}

void launch_gelu_backward_bias_gradient(const void* grad_out, const void* pre, ElementType type, void* grad_pre,
                                        float* grad_bias, float* scratch, std::int64_t rows, std::int64_t width,
                                        cudaStream_t stream) {
  if (type == ElementType::kBFloat16) {
    launch<__nv_bfloat16, true>(grad_out, pre, grad_pre, grad_bias, scratch, rows, width, stream);
  } else if (type == ElementType::kFloat16) {
    launch<__half, true>(grad_out, pre, grad_pre, grad_bias, scratch, rows, width, stream);
  } else {
    throw std::invalid_argument("aios: launch_gelu_backward_bias_gradient: 16-bit tensors expected");
  }
}

}  // namespace aios
