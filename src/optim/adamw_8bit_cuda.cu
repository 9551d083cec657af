#include <cub/block/block_reduce.cuh>
#include <stdexcept>
#include <string>

#include "optim/adamw_8bit_cuda.h"

namespace aios {
namespace {

constexpr int kBlock = 256;  // = kQuantizationBlock: one thread per element of a quantization block

struct Maximum {  // cub::Max is gone in CUDA 13; this works with every CUB
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

// Index of the nearest map entry, ties to the larger: the first entry >= x (binary search over the
// sorted map, as torch.searchsorted), then it or its left neighbour. Same rule as the reference.
__device__ __forceinline__ std::uint8_t nearest_code(const float* map, float x) {
  int lo = 0, hi = 256;
  while (lo < hi) {
    const int mid = (lo + hi) >> 1;
    if (map[mid] < x)
      lo = mid + 1;
    else
      hi = mid;
  }
  const int upper = min(max(lo, 1), 255);
  const float up = map[upper], down = map[upper - 1];
  return static_cast<std::uint8_t>(__fsub_rn(up, x) <= __fsub_rn(x, down) ? upper : upper - 1);
}

__global__ void __launch_bounds__(kBlock)
    adamw_8bit_kernel(float* __restrict__ param, const float* __restrict__ grad, std::uint8_t* __restrict__ codes_avg,
                      std::uint8_t* __restrict__ codes_avg_sq, float* __restrict__ absmax_avg,
                      float* __restrict__ absmax_avg_sq, const float* __restrict__ map_signed,
                      const float* __restrict__ map_unsigned, std::int64_t n, float beta1, float one_minus_beta1,
                      float beta2, float one_minus_beta2, float eps, float decay_factor, float step_size,
                      float sqrt_bias2) {
  using Reduce = cub::BlockReduce<float, kBlock>;
  __shared__ float signed_map[256], unsigned_map[256];
  __shared__ typename Reduce::TempStorage reduce_storage;
  __shared__ float block_max[2];

  const int tid = threadIdx.x;
  signed_map[tid] = map_signed[tid];
  unsigned_map[tid] = map_unsigned[tid];
  __syncthreads();

  const std::int64_t block = blockIdx.x;
  const std::int64_t i = block * kBlock + tid;
  const bool valid = i < n;
  float m = 0.f, v = 0.f;
  if (valid) {
    const float g = grad[i];
    // Dequantize with the old absmax, update the moments in fp32 (explicit roundings: no FMA
    // contraction, so the arithmetic is the reference's op by op).
    m = __fmul_rn(signed_map[codes_avg[i]], absmax_avg[block]);
    v = __fmul_rn(unsigned_map[codes_avg_sq[i]], absmax_avg_sq[block]);
    m = __fadd_rn(__fmul_rn(m, beta1), __fmul_rn(g, one_minus_beta1));
    v = __fadd_rn(__fmul_rn(v, beta2), __fmul_rn(__fmul_rn(one_minus_beta2, g), g));
    const float denom = __fadd_rn(__fdiv_rn(sqrtf(v), sqrt_bias2), eps);
    float p = __fmul_rn(param[i], decay_factor);
    p = __fadd_rn(p, __fmul_rn(__fdiv_rn(m, denom), -step_size));
    param[i] = p;
  }
  // Every thread has read this block's old absmax before the reductions' barriers.
  const float max_m = Reduce(reduce_storage).Reduce(fabsf(m), Maximum());
  __syncthreads();
  const float max_v = Reduce(reduce_storage).Reduce(v, Maximum());
  if (tid == 0) {
    block_max[0] = max_m;
    block_max[1] = max_v;
    absmax_avg[block] = max_m;
    absmax_avg_sq[block] = max_v;
  }
  __syncthreads();
  if (valid) {
    const float scale_m = block_max[0] > 0.f ? block_max[0] : 1.f;
    const float scale_v = block_max[1] > 0.f ? block_max[1] : 1.f;
    codes_avg[i] = nearest_code(signed_map, fminf(fmaxf(__fdiv_rn(m, scale_m), -1.f), 1.f));
    codes_avg_sq[i] = nearest_code(unsigned_map, fminf(fmaxf(__fdiv_rn(v, scale_v), -1.f), 1.f));
  }
}

}  // namespace

void launch_adamw_8bit(float* param, const float* grad, std::uint8_t* codes_avg, std::uint8_t* codes_avg_sq,
                       float* absmax_avg, float* absmax_avg_sq, const float* map_signed, const float* map_unsigned,
                       std::int64_t n, const Adamw8bitStep& s, cudaStream_t stream) {
  if (n == 0) return;
  const std::int64_t blocks = (n + kBlock - 1) / kBlock;
  adamw_8bit_kernel<<<static_cast<unsigned>(blocks), kBlock, 0, stream>>>(
      param, grad, codes_avg, codes_avg_sq, absmax_avg, absmax_avg_sq, map_signed, map_unsigned, n,
      static_cast<float>(s.beta1), static_cast<float>(1.0 - s.beta1), static_cast<float>(s.beta2),
      static_cast<float>(1.0 - s.beta2), static_cast<float>(s.eps), static_cast<float>(1.0 - s.lr * s.weight_decay),
      static_cast<float>(s.lr / s.bias_correction1), static_cast<float>(s.sqrt_bias_correction2));
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) {
    throw std::runtime_error(std::string("aios: 8-bit AdamW kernel launch failed: ") + cudaGetErrorString(status));
  }
}

}  // namespace aios
