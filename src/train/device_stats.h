// What the training loop asks of the device: its name, a peak FLOP/s for MFU, memory figures and
// synchronization. CUDA calls compile only when LibTorch has CUDA.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <string>

namespace aios {

struct MemoryStats {
  bool available = false;  // false on the CPU
  std::int64_t peak_allocated = 0;
  std::int64_t peak_reserved = 0;
  std::int64_t current_allocated = 0;
};

std::string device_name(const c10::Device& device);
// Dense peak TFLOP/s of the device for the model's dtype (docs/benchmarks.md lists the table);
// 0 when unknown (MFU is then reported as null). --peak-tflops overrides.
double default_peak_tflops(const c10::Device& device, c10::ScalarType dtype);
void reset_peak_memory(const c10::Device& device);
MemoryStats memory_stats(const c10::Device& device);
void synchronize(const c10::Device& device);
// Returns the caching allocator's unused blocks to the driver (after an out-of-memory).
void release_cached_memory(const c10::Device& device);
// Caps what the caching allocator may hold on a CUDA device (fault injection: a real out-of-memory);
// returns false on the CPU.
bool limit_device_memory(const c10::Device& device, double bytes);

}  // namespace aios
