#include "train/device_stats.h"

#include <algorithm>

#if AIOS_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace aios {

std::string device_name(const c10::Device& device) {
#if AIOS_WITH_CUDA
  if (device.is_cuda())
    return std::string("cuda:") + std::to_string(device.index()) + " " +
           at::cuda::getDeviceProperties(device.index())->name;
#endif
  return device.str();
}

double default_peak_tflops(const c10::Device& device, c10::ScalarType dtype) {
  const std::string name = device_name(device);
  // NVIDIA H100 SXM5 / H200 datasheets: dense BF16/FP16 tensor 989.4, FP32 (no TF32) 66.9, FP64 tensor 66.9.
  if (name.find("H100") != std::string::npos || name.find("H200") != std::string::npos) {
    return (dtype == c10::kBFloat16 || dtype == c10::kHalf) ? 989.4 : 66.9;
  }
  return 0.0;
}

void reset_peak_memory(const c10::Device& device) {
#if AIOS_WITH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
#else
  (void)device;
#endif
}

MemoryStats memory_stats(const c10::Device& device) {
  MemoryStats stats;
#if AIOS_WITH_CUDA
  if (device.is_cuda()) {
    const auto s = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
    const auto all = static_cast<std::size_t>(c10::CachingAllocator::StatType::AGGREGATE);
    stats.available = true;
    stats.peak_allocated = s.allocated_bytes[all].peak;
    stats.peak_reserved = s.reserved_bytes[all].peak;
    stats.current_allocated = s.allocated_bytes[all].current;
  }
#else
  (void)device;
#endif
  return stats;
}

void synchronize(const c10::Device& device) {
#if AIOS_WITH_CUDA
  if (device.is_cuda()) c10::cuda::device_synchronize();
#else
  (void)device;
#endif
}

void release_cached_memory(const c10::Device& device) {
#if AIOS_WITH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::emptyCache();
#else
  (void)device;
#endif
}

bool limit_device_memory(const c10::Device& device, double bytes) {
#if AIOS_WITH_CUDA
  if (device.is_cuda()) {
    const double total = static_cast<double>(at::cuda::getDeviceProperties(device.index())->totalGlobalMem);
    c10::cuda::CUDACachingAllocator::setMemoryFraction(std::min(1.0, bytes / total), device.index());
    return true;
  }
#else
  (void)device;
  (void)bytes;
#endif
  return false;
}

}  // namespace aios
