#include <cuda_runtime_api.h>

#include <atomic>
#include <cstdio>

#include "kernels/cuda_images.h"

namespace aios {
namespace {

// Built with the same architectures as every other kernel of aios: if the driver has an image of
// this one for a device, it has one of each.
__global__ void probe_kernel() {}

constexpr int kDevices = 64;
std::atomic<int> answers[kDevices];  // 0: not asked yet, 1: runs, 2: does not
std::atomic<bool> forced_aten{false};

bool ask_driver(int device) {
  int current = 0;
  if (cudaGetDevice(&current) != cudaSuccess) current = device;
  if (current != device) cudaSetDevice(device);
  cudaFuncAttributes attributes{};
  const cudaError_t status = cudaFuncGetAttributes(&attributes, probe_kernel);
  cudaGetLastError();  // a missing image leaves its error behind; the next launch check must not read it
  if (status != cudaSuccess) {
    cudaDeviceProp properties{};
    cudaGetDeviceProperties(&properties, device);
    std::fprintf(stderr,
                 "aios: %s (compute capability %d.%d) has no image of aios's CUDA kernels (%s): LayerNorm, the "
                 "classifier, GELU and the bias gradients, the q/k/v gradients and 8-bit AdamW run on ATen's "
                 "kernels instead\n",
                 properties.name, properties.major, properties.minor, cudaGetErrorString(status));
  }
  if (current != device) cudaSetDevice(current);
  return status == cudaSuccess;
}

}  // namespace

bool own_kernels_run_on(int device) {
  if (forced_aten.load(std::memory_order_relaxed)) return false;
  if (device < 0 || device >= kDevices) return ask_driver(device);
  int answer = answers[device].load(std::memory_order_relaxed);
  if (answer == 0) {
    answer = ask_driver(device) ? 1 : 2;
    answers[device].store(answer, std::memory_order_relaxed);
  }
  return answer == 1;
}

void force_aten_kernels_for_testing(bool force) { forced_aten.store(force); }

}  // namespace aios
