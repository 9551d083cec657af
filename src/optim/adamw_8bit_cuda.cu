#include <algorithm>
#include <stdexcept>
#include <string>

#include "optim/adamw_8bit_cuda.h"

namespace aios {
namespace {

constexpr int kBlock = 256;            // = kQuantizationBlock
constexpr int kPerLane = kBlock / 32;  // elements of a quantization block per lane of its warp
constexpr int kThreadsPerCta = 256;
constexpr int kWarpsPerCta = kThreadsPerCta / 32;

// The sorted map's entries 0..254 as a complete binary search tree in breadth-first order
// ("Eytzinger" layout): node k (1..255) has children 2k and 2k + 1, and the nodes a search visits
// at one depth are neighbours in memory, so a warp's lanes, each searching its own value, read
// distinct shared-memory banks where the sorted array's midpoints all fall in one bank.
// Node k at depth d, p-th of its level, holds sorted entry (2p + 1)·2^(7 − d) − 1.
__device__ __forceinline__ int sorted_index_of_node(int k) {
  const int depth = 31 - __clz(k), p = k - (1 << depth);
  return ((2 * p + 1) << (7 - depth)) - 1;
}

// Index of the nearest map entry, ties to the larger: the first entry >= x (as torch.searchsorted),
// then it or its left neighbour. Same rule as the reference. Eight steps down `tree`; the first
// entry >= x is the node where the search last went left (k without its trailing ones and that
// zero), or entry 255 = 1.0 when it never did (x is at most 1).
__device__ __forceinline__ std::uint8_t nearest_code(const float* map, const float* tree, float x) {
  int k = 1;
#pragma unroll
  for (int level = 0; level < 8; ++level) k = 2 * k + (tree[k] < x ? 1 : 0);
  k >>= __ffs(~k);
  const int lower_bound = k == 0 ? 255 : sorted_index_of_node(k);
  const int upper = min(max(lower_bound, 1), 255);
  const float up = map[upper], down = map[upper - 1];
  return static_cast<std::uint8_t>(__fsub_rn(up, x) <= __fsub_rn(x, down) ? upper : upper - 1);
}

// A launch's tensors, passed by value as the kernel's argument (48 · 56 + 49 · 8 bytes: inside
// the 4 KB every CUDA version accepts). first_block[t]: the launch-wide index of tensor t's first
// quantization block; first_block[count]: the total.
struct TensorBatch {
  Adamw8bitTensor tensors[kAdamw8bitTensorsPerLaunch];
  std::int64_t first_block[kAdamw8bitTensorsPerLaunch + 1];
  int count;
};

struct Hyperparameters {
  float beta1, one_minus_beta1, beta2, one_minus_beta2, eps;
  const float* lr;
  const float* step;
  double beta1_exact, beta2_exact, weight_decay;
};

// What depends on the step: computed in double from the device scalars, as the reference does on
// the host, and only then rounded to float.
struct StepFactors {
  float decay_factor;  // 1 − lr·wd
  float step_size;     // lr / (1 − β1^t)
  float sqrt_bias2;    // √(1 − β2^t)
};

__device__ __forceinline__ StepFactors step_factors(const Hyperparameters& h) {
  const double lr = *h.lr, t = *h.step;
  return {static_cast<float>(1.0 - lr * h.weight_decay), static_cast<float>(lr / (1.0 - pow(h.beta1_exact, t))),
          static_cast<float>(sqrt(1.0 - pow(h.beta2_exact, t)))};
}

__device__ __forceinline__ float warp_max(float value) {
  for (int offset = 16; offset > 0; offset /= 2) value = fmaxf(value, __shfl_xor_sync(0xffffffffu, value, offset));
  return value;
}

// One warp per quantization block: lane l takes the block's elements l, l + 32, ..., l + 224
// (coalesced loads and stores whatever the tensor's alignment), and the block's two absmax are
// warp maxima (exact in any order), so no barrier is needed after the maps are loaded. Warps take
// the launch's quantization blocks in turn, across all of its tensors.
__global__ void __launch_bounds__(kThreadsPerCta)
    adamw_8bit_kernel(const __grid_constant__ TensorBatch batch, const float* __restrict__ map_signed,
                      const float* __restrict__ map_unsigned, const Hyperparameters h) {
  __shared__ float signed_map[256], unsigned_map[256], signed_tree[256], unsigned_tree[256];
  __shared__ StepFactors factors;
  for (int i = threadIdx.x; i < 256; i += kThreadsPerCta) {
    signed_map[i] = map_signed[i];
    unsigned_map[i] = map_unsigned[i];
    if (i > 0) {
      signed_tree[i] = map_signed[sorted_index_of_node(i)];
      unsigned_tree[i] = map_unsigned[sorted_index_of_node(i)];
    }
  }
  if (threadIdx.x == 0) factors = step_factors(h);
  __syncthreads();
  const float decay_factor = factors.decay_factor, step_size = factors.step_size, sqrt_bias2 = factors.sqrt_bias2;

  const int lane = threadIdx.x % 32;
  const std::int64_t warps = static_cast<std::int64_t>(gridDim.x) * kWarpsPerCta;
  int t = 0;  // a warp takes blocks in increasing order, so its tensor index only moves forward
  for (std::int64_t launch_block = static_cast<std::int64_t>(blockIdx.x) * kWarpsPerCta + threadIdx.x / 32;
       launch_block < batch.first_block[batch.count]; launch_block += warps) {
    while (launch_block >= batch.first_block[t + 1]) ++t;
    const Adamw8bitTensor& x = batch.tensors[t];
    const std::int64_t block = launch_block - batch.first_block[t];
    const float old_absmax_m = x.absmax_avg[block], old_absmax_v = x.absmax_avg_sq[block];
    float m[kPerLane], v[kPerLane];
    float max_m = 0.f, max_v = 0.f;
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      const std::int64_t i = block * kBlock + k * 32 + lane;
      m[k] = 0.f, v[k] = 0.f;
      if (i < x.n) {
        const float g = x.grad[i];
        // Dequantize with the old absmax, update the moments in fp32 (explicit roundings: no FMA
        // contraction, so the arithmetic is the reference's op by op).
        m[k] = __fmul_rn(signed_map[x.codes_avg[i]], old_absmax_m);
        v[k] = __fmul_rn(unsigned_map[x.codes_avg_sq[i]], old_absmax_v);
        m[k] = __fadd_rn(__fmul_rn(m[k], h.beta1), __fmul_rn(g, h.one_minus_beta1));
        v[k] = __fadd_rn(__fmul_rn(v[k], h.beta2), __fmul_rn(__fmul_rn(h.one_minus_beta2, g), g));
        const float denom = __fadd_rn(__fdiv_rn(sqrtf(v[k]), sqrt_bias2), h.eps);
        float p = __fmul_rn(x.param[i], decay_factor);
        p = __fadd_rn(p, __fmul_rn(__fdiv_rn(m[k], denom), -step_size));
        x.param[i] = p;
      }
      max_m = fmaxf(max_m, fabsf(m[k]));
      max_v = fmaxf(max_v, v[k]);
    }
    max_m = warp_max(max_m);  // every lane has read the old absmax before lane 0 writes the new
    max_v = warp_max(max_v);
    if (lane == 0) {
      x.absmax_avg[block] = max_m;
      x.absmax_avg_sq[block] = max_v;
    }
    const float scale_m = max_m > 0.f ? max_m : 1.f;
    const float scale_v = max_v > 0.f ? max_v : 1.f;
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      const std::int64_t i = block * kBlock + k * 32 + lane;
      if (i < x.n) {
        x.codes_avg[i] = nearest_code(signed_map, signed_tree, fminf(fmaxf(__fdiv_rn(m[k], scale_m), -1.f), 1.f));
        x.codes_avg_sq[i] =
            nearest_code(unsigned_map, unsigned_tree, fminf(fmaxf(__fdiv_rn(v[k], scale_v), -1.f), 1.f));
      }
    }
  }
}

// Thread blocks per launch: as many as the GPU holds at once (each loops over quantization
// blocks), asked of the driver once per device.
int resident_blocks() {
  constexpr int kDevices = 64;
  static int blocks_of_device[kDevices] = {};
  int device = 0;
  cudaGetDevice(&device);
  if (device >= 0 && device < kDevices && blocks_of_device[device] > 0) return blocks_of_device[device];
  int sms = 0, per_sm = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, adamw_8bit_kernel, kThreadsPerCta, 0);
  const int blocks = sms * (per_sm > 0 ? per_sm : 1);
  if (device >= 0 && device < kDevices) blocks_of_device[device] = blocks;
  return blocks;
}

}  // namespace

void launch_adamw_8bit(const Adamw8bitTensor* tensors, int count, const float* map_signed, const float* map_unsigned,
                       const Adamw8bitStep& s, cudaStream_t stream) {
  const Hyperparameters h{static_cast<float>(s.beta1),
                          static_cast<float>(1.0 - s.beta1),
                          static_cast<float>(s.beta2),
                          static_cast<float>(1.0 - s.beta2),
                          static_cast<float>(s.eps),
                          s.lr,
                          s.step,
                          s.beta1,
                          s.beta2,
                          s.weight_decay};
  const std::int64_t resident = resident_blocks();
  int next = 0;
  while (next < count) {
    TensorBatch batch{};
    batch.count = 0;
    for (; next < count && batch.count < kAdamw8bitTensorsPerLaunch; ++next) {
      if (tensors[next].n == 0) continue;  // an empty ZeRO shard
      batch.tensors[batch.count] = tensors[next];
      batch.first_block[batch.count + 1] = batch.first_block[batch.count] + (tensors[next].n + kBlock - 1) / kBlock;
      ++batch.count;
    }
    const std::int64_t blocks = batch.first_block[batch.count];
    if (blocks == 0) continue;
    const std::int64_t ctas = std::min((blocks + kWarpsPerCta - 1) / kWarpsPerCta, resident);
    adamw_8bit_kernel<<<static_cast<unsigned>(ctas), kThreadsPerCta, 0, stream>>>(batch, map_signed, map_unsigned, h);
    const cudaError_t status = cudaGetLastError();
    if (status != cudaSuccess) {
      throw std::runtime_error(std::string("aios: 8-bit AdamW kernel launch failed: ") + cudaGetErrorString(status));
    }
  }
}

}  // namespace aios
