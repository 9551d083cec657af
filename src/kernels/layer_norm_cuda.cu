#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <stdexcept>
#include <string>

#include "kernels/cuda_math.cuh"
#include "kernels/layer_norm_cuda.h"

namespace aios {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

// Lane l of a warp holds columns l, l + 32, ..., l + 32·(K − 1) of its row: coalesced loads, and
// the row's statistics are warp sums. kAdd: the row normalized is x + branch, and that sum (the
// next residual stream) is written to sum_out in the same pass.
template <int K, typename Out, bool kAdd>
__global__ void __launch_bounds__(kThreads)
    layer_norm_forward_kernel(const float* __restrict__ x, const Out* __restrict__ branch, float* __restrict__ sum_out,
                              const float* __restrict__ weight, const float* __restrict__ bias, Out* __restrict__ out,
                              float* __restrict__ mean, float* __restrict__ rstd, std::int64_t rows, float eps) {
  constexpr int kWidth = 32 * K;
  const int lane = threadIdx.x % 32;
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (row >= rows) return;
  const float* xr = x + row * kWidth;
  float v[K];
  float sum = 0.f;
#pragma unroll
  for (int k = 0; k < K; ++k) {
    v[k] = xr[lane + 32 * k];
    if constexpr (kAdd) {
      v[k] += to_float(branch[row * kWidth + lane + 32 * k]);
      sum_out[row * kWidth + lane + 32 * k] = v[k];
    }
    sum += v[k];
  }
  const float m = warp_sum(sum) / kWidth;
  float squares = 0.f;
#pragma unroll
  for (int k = 0; k < K; ++k) squares += (v[k] - m) * (v[k] - m);
  const float r = rsqrtf(warp_sum(squares) / kWidth + eps);  // biased variance, as LayerNorm
  Out* yr = out + row * kWidth;
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const int c = lane + 32 * k;
    yr[c] = from_float<Out>((v[k] - m) * r * weight[c] + bias[c]);
  }
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = r;
  }
}

// Each warp takes rows warp, warp + warps, ...: the input gradient row by row, and its share of
// the weight and bias gradients in registers, written to scratch [2, warps, width] at the end.
// kResidual: the input also reached the output by the residual stream, whose gradient
// grad_residual is added here rather than by a separate kernel; grad_branch (if not null) receives
// a copy of the input gradient in Grad's type, for a branch of that type added into the input.
template <int K, typename Grad, bool kResidual>
__global__ void __launch_bounds__(kThreads)
    layer_norm_backward_kernel(const Grad* __restrict__ grad_out, const float* __restrict__ grad_residual,
                               const float* __restrict__ x, const float* __restrict__ weight,
                               const float* __restrict__ mean, const float* __restrict__ rstd,
                               float* __restrict__ grad_x, Grad* __restrict__ grad_branch, float* __restrict__ scratch,
                               std::int64_t rows) {
  constexpr int kWidth = 32 * K;
  const int lane = threadIdx.x % 32;
  const int warp = blockIdx.x * kWarps + threadIdx.x / 32;
  const int warps = gridDim.x * kWarps;
  float grad_w[K], grad_b[K];
#pragma unroll
  for (int k = 0; k < K; ++k) grad_w[k] = grad_b[k] = 0.f;
  for (std::int64_t row = warp; row < rows; row += warps) {
    const float m = mean[row], r = rstd[row];
    float x_hat[K], g[K];
    float sum_g = 0.f, sum_g_x_hat = 0.f;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const int c = lane + 32 * k;
      const float dy = to_float(grad_out[row * kWidth + c]);
      x_hat[k] = (x[row * kWidth + c] - m) * r;
      g[k] = dy * weight[c];
      sum_g += g[k];
      sum_g_x_hat += g[k] * x_hat[k];
      grad_b[k] += dy;
      grad_w[k] += dy * x_hat[k];
    }
    const float mean_g = warp_sum(sum_g) / kWidth, mean_g_x_hat = warp_sum(sum_g_x_hat) / kWidth;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const std::int64_t i = row * kWidth + lane + 32 * k;
      float grad = r * (g[k] - mean_g - x_hat[k] * mean_g_x_hat);
      if constexpr (kResidual) grad += grad_residual[i];
      grad_x[i] = grad;
      if (grad_branch != nullptr) grad_branch[i] = from_float<Grad>(grad);
    }
  }
#pragma unroll
  for (int k = 0; k < K; ++k) {
    scratch[static_cast<std::int64_t>(warp) * kWidth + lane + 32 * k] = grad_w[k];
    scratch[static_cast<std::int64_t>(warps + warp) * kWidth + lane + 32 * k] = grad_b[k];
  }
}

// Sums scratch [2, warps, width] over warps in a fixed order: block (column group of 32, half)
// has 8 rows of threads, each summing every 8th warp's partial; then the 8 sums in order.
__global__ void __launch_bounds__(kThreads)
    layer_norm_sum_partials_kernel(const float* __restrict__ scratch, int warps, int width,
                                   float* __restrict__ grad_weight, float* __restrict__ grad_bias) {
  __shared__ float partial[kWarps][33];
  const int column = blockIdx.x * 32 + threadIdx.x % 32, group = threadIdx.x / 32;
  const int half = blockIdx.y;  // 0: weight, 1: bias
  float sum = 0.f;
  if (column < width) {
    const float* p = scratch + static_cast<std::int64_t>(half) * warps * width + column;
    for (int w = group; w < warps; w += kWarps) sum += p[static_cast<std::int64_t>(w) * width];
  }
  partial[group][threadIdx.x % 32] = sum;
  __syncthreads();
  if (group == 0 && column < width) {
    float total = 0.f;
    for (int i = 0; i < kWarps; ++i) total += partial[i][threadIdx.x % 32];
    (half == 0 ? grad_weight : grad_bias)[column] = total;
  }
}

// As many warps as the GPU holds at once for this kernel (its register use decides): each takes
// an equal share of the rows, and every warp's partial sums are added at the end.
// Asked of the driver once per device and kernel, not on every backward.
template <int K, typename Grad, bool kResidual>
int backward_warps() {
  constexpr int kDevices = 64;
  static int warps_of_device[kDevices] = {};  // one table per instantiation
  int device = 0;
  cudaGetDevice(&device);
  if (device >= 0 && device < kDevices && warps_of_device[device] > 0) return warps_of_device[device];
  int sms = 0, blocks_per_sm = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks_per_sm, layer_norm_backward_kernel<K, Grad, kResidual>,
                                                kThreads, 0);
  const int warps = sms * (blocks_per_sm > 0 ? blocks_per_sm : 1) * kWarps;
  if (device >= 0 && device < kDevices) warps_of_device[device] = warps;
  return warps;
}

// The same for a grad type known at run time.
template <int K, bool kResidual>
int backward_warps(ElementType grad_type) {
  switch (grad_type) {
    case ElementType::kBFloat16:
      return backward_warps<K, __nv_bfloat16, kResidual>();
    case ElementType::kFloat16:
      return backward_warps<K, __half, kResidual>();
    default:
      return backward_warps<K, float, kResidual>();
  }
}

void check_launch(const char* what) {
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) {
    throw std::runtime_error(std::string("aios: ") + what + " kernel launch failed: " + cudaGetErrorString(status));
  }
}

// Calls f with the width's K as a compile-time constant; the widths instantiated.
template <typename F>
bool with_k(std::int64_t width, F&& f) {
  switch (width) {
    case 256:
      f(std::integral_constant<int, 8>{});
      return true;
    case 512:
      f(std::integral_constant<int, 16>{});
      return true;
    case 768:
      f(std::integral_constant<int, 24>{});
      return true;
    case 1024:
      f(std::integral_constant<int, 32>{});
      return true;
    case 1280:
      f(std::integral_constant<int, 40>{});
      return true;
    case 1600:
      f(std::integral_constant<int, 50>{});
      return true;
    default:
      return false;
  }
}

}  // namespace

bool layer_norm_width_supported(std::int64_t width) {
  return with_k(width, [](auto) {});
}

void launch_layer_norm_forward(const float* x, const void* branch, float* sum_out, const float* weight,
                               const float* bias, void* out, ElementType out_type, float* mean, float* rstd,
                               std::int64_t rows, std::int64_t width, float eps, cudaStream_t stream) {
  if (rows == 0) return;
  const dim3 grid(static_cast<unsigned>((rows + kWarps - 1) / kWarps));
  const auto launch = [&]<int K, typename Out>() {
    if (branch != nullptr) {
      layer_norm_forward_kernel<K, Out, true><<<grid, kThreads, 0, stream>>>(
          x, static_cast<const Out*>(branch), sum_out, weight, bias, static_cast<Out*>(out), mean, rstd, rows, eps);
    } else {
      layer_norm_forward_kernel<K, Out, false><<<grid, kThreads, 0, stream>>>(
          x, nullptr, nullptr, weight, bias, static_cast<Out*>(out), mean, rstd, rows, eps);
    }
  };
  const bool known = with_k(width, [&](auto k) {
    constexpr int K = decltype(k)::value;
    switch (out_type) {
      case ElementType::kFloat32:
        launch.template operator()<K, float>();
        break;
      case ElementType::kBFloat16:
        launch.template operator()<K, __nv_bfloat16>();
        break;
      case ElementType::kFloat16:
        launch.template operator()<K, __half>();
        break;
    }
  });
  if (!known) throw std::runtime_error("aios: LayerNorm kernel: width " + std::to_string(width) + " not built");
  check_launch("LayerNorm forward");
}

std::int64_t layer_norm_backward_scratch(std::int64_t width, ElementType grad_type, bool residual) {
  int warps = 0;
  with_k(width, [&](auto k) {
    constexpr int K = decltype(k)::value;
    warps = residual ? backward_warps<K, true>(grad_type) : backward_warps<K, false>(grad_type);
  });
  return 2LL * warps * width;
}

void launch_layer_norm_backward(const void* grad_out, ElementType grad_type, const float* grad_residual, const float* x,
                                const float* weight, const float* mean, const float* rstd, float* grad_x,
                                void* grad_branch, float* grad_weight, float* grad_bias, float* scratch,
                                std::int64_t rows, std::int64_t width, cudaStream_t stream) {
  int warps = 0;
  const auto launch = [&]<int K, typename Grad>() {
    const auto* dy = static_cast<const Grad*>(grad_out);
    auto* grad_branch_typed = static_cast<Grad*>(grad_branch);
    if (grad_residual != nullptr) {
      warps = backward_warps<K, Grad, true>();
      layer_norm_backward_kernel<K, Grad, true><<<warps / kWarps, kThreads, 0, stream>>>(
          dy, grad_residual, x, weight, mean, rstd, grad_x, grad_branch_typed, scratch, rows);
    } else {
      warps = backward_warps<K, Grad, false>();
      layer_norm_backward_kernel<K, Grad, false><<<warps / kWarps, kThreads, 0, stream>>>(
          dy, nullptr, x, weight, mean, rstd, grad_x, grad_branch_typed, scratch, rows);
    }
  };
  const bool known = with_k(width, [&](auto k) {
    constexpr int K = decltype(k)::value;
    switch (grad_type) {
      case ElementType::kFloat32:
        launch.template operator()<K, float>();
        break;
      case ElementType::kBFloat16:
        launch.template operator()<K, __nv_bfloat16>();
        break;
      case ElementType::kFloat16:
        launch.template operator()<K, __half>();
        break;
    }
  });
  if (!known) throw std::runtime_error("aios: LayerNorm kernel: width " + std::to_string(width) + " not built");
  check_launch("LayerNorm backward");
  const dim3 sum_grid(static_cast<unsigned>((width + 31) / 32), 2);
  layer_norm_sum_partials_kernel<<<sum_grid, kThreads, 0, stream>>>(scratch, warps, static_cast<int>(width),
                                                                    grad_weight, grad_bias);
  check_launch("LayerNorm weight-gradient sum");
}

}  // namespace aios
