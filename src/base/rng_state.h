// Save and restore the default random generator of a device (CPU: the Mersenne state; CUDA: 16
// bytes of Philox seed and offset), under the generator's mutex as ATen requires. Header-only so
// that aios_base itself needs no LibTorch; used by checkpoints and activation checkpointing.
#pragma once

#include <ATen/Context.h>
#include <ATen/core/Generator.h>

#include <mutex>

namespace aios {

inline at::Tensor get_rng_state(const at::Device& device) {
  auto generator = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}

inline void set_rng_state(const at::Device& device, const at::Tensor& state) {
  auto generator = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(state);
}

}  // namespace aios
