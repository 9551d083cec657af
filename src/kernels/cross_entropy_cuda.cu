#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cfloat>
#include <stdexcept>
#include <string>

#include "kernels/cross_entropy_cuda.h"
#include "kernels/cuda_math.cuh"

namespace aios {
namespace {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;

// kVec logits moved by one load or store (16 bytes when kVec · sizeof(T) == 16).
template <typename T, int kVec>
struct alignas(sizeof(T) * kVec) Pack {
  T v[kVec];
};

// Online softmax statistics of a set of logits: its maximum and Σ exp(x − max). Two sets merge
// exactly, so threads, warps and the block combine theirs in any grouping. The maximum starts at
// −FLT_MAX (not −inf) so that an empty set merges without inf − inf; a NaN logit makes the sum NaN.
struct MaxSum {
  float max;
  float sum;
};

__device__ __forceinline__ void add(MaxSum& s, float x) {
  if (x > s.max) {
    s.sum = s.sum * expf(s.max - x) + 1.f;
    s.max = x;
  } else {
    s.sum += expf(x - s.max);
  }
}

__device__ __forceinline__ MaxSum merge(MaxSum a, MaxSum b) {
  const float m = fmaxf(a.max, b.max);
  return {m, a.sum * expf(a.max - m) + b.sum * expf(b.max - m)};
}

__device__ __forceinline__ MaxSum warp_merge(MaxSum s) {
  for (int offset = 16; offset > 0; offset /= 2) {
    const MaxSum other{__shfl_xor_sync(0xffffffffu, s.max, offset), __shfl_xor_sync(0xffffffffu, s.sum, offset)};
    s = merge(s, other);
  }
  return s;
}

// One block per row. Pass 1 reads the row for its log-sum-exp; pass 2 reads it again and writes
// softmax − onehot over it. Each thread writes only elements it read itself, and the target's logit
// is read before the barrier that precedes any write. kVec-wide packs cover the row up to the last
// multiple of kVec; the rest (GPT-2's 50,257 = 8·6282 + 1) is read one element at a time.
template <typename T, int kVec>
__global__ void __launch_bounds__(kThreads)
    cross_entropy_rows_kernel(T* logits, std::int64_t vocab, std::int64_t row_stride, const std::int64_t* targets,
                              float* losses, bool write_gradient) {
  using P = Pack<T, kVec>;
  const std::int64_t row = blockIdx.x;
  T* x = logits + row * row_stride;
  const std::int64_t target = targets[row];
  float target_logit = 0.f;
  if (threadIdx.x == 0)
    target_logit = (target >= 0 && target < vocab) ? to_float(x[target]) : __int_as_float(0x7fc00000);

  const std::int64_t packed = vocab / kVec * kVec;
  MaxSum local{-FLT_MAX, 0.f};
  for (std::int64_t i = static_cast<std::int64_t>(threadIdx.x) * kVec; i < packed; i += kThreads * kVec) {
    const P p = *reinterpret_cast<const P*>(x + i);
#pragma unroll
    for (int k = 0; k < kVec; ++k) add(local, to_float(p.v[k]));
  }
  for (std::int64_t i = packed + threadIdx.x; i < vocab; i += kThreads) add(local, to_float(x[i]));
  __shared__ MaxSum per_warp[kWarps];
  __shared__ float row_lse;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  local = warp_merge(local);
  if (lane == 0) per_warp[warp] = local;
  __syncthreads();
  if (warp == 0) {
    MaxSum s = lane < kWarps ? per_warp[lane] : MaxSum{-FLT_MAX, 0.f};
    s = warp_merge(s);
    if (lane == 0) row_lse = s.max + logf(s.sum);
  }
  __syncthreads();
  const float lse = row_lse;
  if (threadIdx.x == 0) losses[row] = lse - target_logit;
  if (!write_gradient) return;

  for (std::int64_t i = static_cast<std::int64_t>(threadIdx.x) * kVec; i < packed; i += kThreads * kVec) {
    const P p = *reinterpret_cast<const P*>(x + i);
    P g;
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
      float value = expf(to_float(p.v[k]) - lse);
      if (i + k == target) value -= 1.f;
      g.v[k] = from_float<T>(value);
    }
    *reinterpret_cast<P*>(x + i) = g;
  }
  for (std::int64_t i = packed + threadIdx.x; i < vocab; i += kThreads) {
    x[i] = from_float<T>(expf(to_float(x[i]) - lse) - (i == target ? 1.f : 0.f));
  }
}

template <typename T>
void launch_typed(T* logits, std::int64_t rows, std::int64_t vocab, std::int64_t row_stride,
                  const std::int64_t* targets, float* losses, bool write_gradient, cudaStream_t stream) {
  constexpr int kWide = 16 / sizeof(T);
  const bool aligned = reinterpret_cast<std::uintptr_t>(logits) % 16 == 0 && row_stride % kWide == 0;
  const dim3 grid(static_cast<unsigned>(rows));
  if (aligned) {
    cross_entropy_rows_kernel<T, kWide>
        <<<grid, kThreads, 0, stream>>>(logits, vocab, row_stride, targets, losses, write_gradient);
  } else {
    cross_entropy_rows_kernel<T, 1>
        <<<grid, kThreads, 0, stream>>>(logits, vocab, row_stride, targets, losses, write_gradient);
  }
}

}  // namespace

void launch_cross_entropy_rows(void* logits, ElementType type, std::int64_t rows, std::int64_t vocab,
                               std::int64_t row_stride, const std::int64_t* targets, float* losses, bool write_gradient,
                               cudaStream_t stream) {
  if (rows == 0) return;
  if (rows > 0x7fffffff) throw std::runtime_error("aios: cross-entropy kernel: more than 2^31 rows in one call");
  switch (type) {
    case ElementType::kFloat32:
      launch_typed(static_cast<float*>(logits), rows, vocab, row_stride, targets, losses, write_gradient, stream);
      break;
    case ElementType::kBFloat16:
      launch_typed(static_cast<__nv_bfloat16*>(logits), rows, vocab, row_stride, targets, losses, write_gradient,
                   stream);
      break;
    case ElementType::kFloat16:
      launch_typed(static_cast<__half*>(logits), rows, vocab, row_stride, targets, losses, write_gradient, stream);
      break;
  }
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) {
    throw std::runtime_error(std::string("aios: cross-entropy kernel launch failed: ") + cudaGetErrorString(status));
  }
}

}  // namespace aios
