#include <algorithm>
#include <stdexcept>
#include <string>

#include "optim/adamw_8bit_cuda.h"
#include "optim/code_search.h"

namespace aios {
namespace {

constexpr int kBlock = 256;            // = kQuantizationBlock
constexpr int kPerLane = kBlock / 32;  // elements of a quantization block per lane of its warp
constexpr int kThreadsPerCta = 256;
constexpr int kWarpsPerCta = kThreadsPerCta / 32;

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

// Which element of its quantization block a lane's k-th value is. Strided: lane l takes l, l + 32,
// ..., l + 224, coalesced 4- and 1-byte accesses whatever the tensor's alignment. Packed: lane l
// takes 8l .. 8l + 7, read and written as two 16-byte and one 8-byte access per array, for tensors
// whose memory is aligned to that; a quarter of the memory instructions of the strided layout.
enum class Layout { kStrided, kPacked };

template <Layout layout>
__device__ __forceinline__ int element_of(int lane, int k) {
  return layout == Layout::kPacked ? lane * kPerLane + k : k * 32 + lane;
}

// One quantization block's memory from the warp's view: its first element in each array and the
// number of elements it has (256, or fewer in a tensor's last block).
struct BlockMemory {
  float* param;
  const float* grad;
  std::uint8_t* codes_avg;
  std::uint8_t* codes_avg_sq;
  int count;
};

// One lane's values of a block.
struct LaneValues {
  float grad[kPerLane], param[kPerLane];
  std::uint8_t code_avg[kPerLane], code_avg_sq[kPerLane];
};

template <Layout layout>
__device__ __forceinline__ void load(const BlockMemory& b, int lane, LaneValues& x) {
  if (layout == Layout::kPacked && lane * kPerLane + kPerLane <= b.count) {
    const auto* grad = reinterpret_cast<const float4*>(b.grad + lane * kPerLane);
    const auto* param = reinterpret_cast<const float4*>(b.param + lane * kPerLane);
    *reinterpret_cast<float4*>(x.grad) = grad[0], *reinterpret_cast<float4*>(x.grad + 4) = grad[1];
    *reinterpret_cast<float4*>(x.param) = param[0], *reinterpret_cast<float4*>(x.param + 4) = param[1];
    *reinterpret_cast<uint2*>(x.code_avg) = *reinterpret_cast<const uint2*>(b.codes_avg + lane * kPerLane);
    *reinterpret_cast<uint2*>(x.code_avg_sq) = *reinterpret_cast<const uint2*>(b.codes_avg_sq + lane * kPerLane);
    return;
  }
#pragma unroll
  for (int k = 0; k < kPerLane; ++k) {
    const int i = element_of<layout>(lane, k);
    const bool inside = i < b.count;
    x.grad[k] = inside ? b.grad[i] : 0.f;
    x.param[k] = inside ? b.param[i] : 0.f;
    x.code_avg[k] = inside ? b.codes_avg[i] : 0;
    x.code_avg_sq[k] = inside ? b.codes_avg_sq[i] : 0;
  }
}

template <Layout layout>
__device__ __forceinline__ void store(const BlockMemory& b, int lane, const LaneValues& x) {
  if (layout == Layout::kPacked && lane * kPerLane + kPerLane <= b.count) {
    auto* param = reinterpret_cast<float4*>(b.param + lane * kPerLane);
    param[0] = *reinterpret_cast<const float4*>(x.param), param[1] = *reinterpret_cast<const float4*>(x.param + 4);
    *reinterpret_cast<uint2*>(b.codes_avg + lane * kPerLane) = *reinterpret_cast<const uint2*>(x.code_avg);
    *reinterpret_cast<uint2*>(b.codes_avg_sq + lane * kPerLane) = *reinterpret_cast<const uint2*>(x.code_avg_sq);
    return;
  }
#pragma unroll
  for (int k = 0; k < kPerLane; ++k) {
    const int i = element_of<layout>(lane, k);
    if (i < b.count) {
      b.param[i] = x.param[k];
      b.codes_avg[i] = x.code_avg[k];
      b.codes_avg_sq[i] = x.code_avg_sq[k];
    }
  }
}

// One warp per quantization block; the block's two absmax are warp maxima (exact in any order), so
// no barrier is needed after the maps are loaded, and both layouts give the same bits. Warps take
// the launch's quantization blocks in turn, across all of its tensors.
template <Layout layout>
__global__ void __launch_bounds__(kThreadsPerCta)
    adamw_8bit_kernel(const __grid_constant__ TensorBatch batch, const float* __restrict__ map_signed,
                      const float* __restrict__ map_unsigned, const std::uint8_t* __restrict__ table_signed,
                      const std::uint8_t* __restrict__ table_unsigned, const Hyperparameters h) {
  __shared__ float signed_map[256], unsigned_map[256];
  __shared__ std::uint8_t signed_table[code_search::kBuckets], unsigned_table[code_search::kBuckets];
  __shared__ StepFactors factors;
  for (int i = threadIdx.x; i < 256; i += kThreadsPerCta) {
    signed_map[i] = map_signed[i];
    unsigned_map[i] = map_unsigned[i];
  }
  for (int i = threadIdx.x; i < code_search::kBuckets; i += kThreadsPerCta) {
    signed_table[i] = table_signed[i];
    unsigned_table[i] = table_unsigned[i];
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
    const Adamw8bitTensor& tensor = batch.tensors[t];
    const std::int64_t block = launch_block - batch.first_block[t], first = block * kBlock;
    const BlockMemory memory{tensor.param + first, tensor.grad + first, tensor.codes_avg + first,
                             tensor.codes_avg_sq + first,
                             static_cast<int>(tensor.n - first < kBlock ? tensor.n - first : kBlock)};
    const float old_absmax_m = tensor.absmax_avg[block], old_absmax_v = tensor.absmax_avg_sq[block];
    LaneValues x;
    load<layout>(memory, lane, x);
    float m[kPerLane], v[kPerLane];
    float max_m = 0.f, max_v = 0.f;
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      m[k] = 0.f, v[k] = 0.f;
      if (element_of<layout>(lane, k) < memory.count) {
        const float g = x.grad[k];
        // Dequantize with the old absmax, update the moments in fp32 (explicit roundings: no FMA
        // contraction, so the arithmetic is the reference's op by op).
        m[k] = __fmul_rn(signed_map[x.code_avg[k]], old_absmax_m);
        v[k] = __fmul_rn(unsigned_map[x.code_avg_sq[k]], old_absmax_v);
        m[k] = __fadd_rn(__fmul_rn(m[k], h.beta1), __fmul_rn(g, h.one_minus_beta1));
        v[k] = __fadd_rn(__fmul_rn(v[k], h.beta2), __fmul_rn(__fmul_rn(h.one_minus_beta2, g), g));
        const float denom = __fadd_rn(__fdiv_rn(sqrtf(v[k]), sqrt_bias2), h.eps);
        const float p = __fmul_rn(x.param[k], decay_factor);
        x.param[k] = __fadd_rn(p, __fmul_rn(__fdiv_rn(m[k], denom), -step_size));
      }
      max_m = fmaxf(max_m, fabsf(m[k]));
      max_v = fmaxf(max_v, v[k]);
    }
    max_m = warp_max(max_m);  // every lane has read the old absmax before lane 0 writes the new
    max_v = warp_max(max_v);
    if (lane == 0) {
      tensor.absmax_avg[block] = max_m;
      tensor.absmax_avg_sq[block] = max_v;
    }
    const float scale_m = max_m > 0.f ? max_m : 1.f;
    const float scale_v = max_v > 0.f ? max_v : 1.f;
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      x.code_avg[k] =
          code_search::nearest_code(signed_map, signed_table, fminf(fmaxf(__fdiv_rn(m[k], scale_m), -1.f), 1.f));
      x.code_avg_sq[k] =
          code_search::nearest_code(unsigned_map, unsigned_table, fminf(fmaxf(__fdiv_rn(v[k], scale_v), -1.f), 1.f));
    }
    store<layout>(memory, lane, x);
  }
}

// Thread blocks per launch: as many as the GPU holds at once (each loops over quantization
// blocks), asked of the driver once per device and layout.
template <Layout layout>
int resident_blocks() {
  constexpr int kDevices = 64;
  static int blocks_of_device[kDevices] = {};
  int device = 0;
  cudaGetDevice(&device);
  if (device >= 0 && device < kDevices && blocks_of_device[device] > 0) return blocks_of_device[device];
  int sms = 0, per_sm = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, adamw_8bit_kernel<layout>, kThreadsPerCta, 0);
  const int blocks = sms * (per_sm > 0 ? per_sm : 1);
  if (device >= 0 && device < kDevices) blocks_of_device[device] = blocks;
  return blocks;
}

// Whether every tensor of the batch can take the packed layout: floats on 16 bytes, codes on 8.
bool batch_is_aligned(const TensorBatch& batch) {
  const auto on = [](const void* p, std::uintptr_t bytes) { return reinterpret_cast<std::uintptr_t>(p) % bytes == 0; };
  for (int t = 0; t < batch.count; ++t) {
    const Adamw8bitTensor& x = batch.tensors[t];
    if (!on(x.param, 16) || !on(x.grad, 16) || !on(x.codes_avg, 8) || !on(x.codes_avg_sq, 8)) return false;
  }
  return true;
}

}  // namespace

void launch_adamw_8bit(const Adamw8bitTensor* tensors, int count, const Adamw8bitMaps& maps, const Adamw8bitStep& s,
                       cudaStream_t stream) {
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
    const bool packed = batch_is_aligned(batch);
    const std::int64_t resident = packed ? resident_blocks<Layout::kPacked>() : resident_blocks<Layout::kStrided>();
    const std::int64_t ctas = std::min((blocks + kWarpsPerCta - 1) / kWarpsPerCta, resident);
    const auto kernel = packed ? adamw_8bit_kernel<Layout::kPacked> : adamw_8bit_kernel<Layout::kStrided>;
    kernel<<<static_cast<unsigned>(ctas), kThreadsPerCta, 0, stream>>>(batch, maps.map_signed, maps.map_unsigned,
                                                                       maps.table_signed, maps.table_unsigned, h);
    const cudaError_t status = cudaGetLastError();
    if (status != cudaSuccess) {
      throw std::runtime_error(std::string("aios: 8-bit AdamW kernel launch failed: ") + cudaGetErrorString(status));
    }
  }
}

}  // namespace aios
