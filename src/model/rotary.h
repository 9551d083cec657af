// Rotary position embedding (RoFormer; the rotate-half layout of GPT-NeoX and LLaMA).
//
// The cos/sin tables depend only on the positions, so one RotaryTable serves every layer of a
// model and is rebuilt only when the positions change (a new chunk or window); queries and keys
// turn together. A block's forward launches 4 kernels for it instead of 32 (16 per tensor when
// each call built its own tables). That matters on short chunks, where the CPU's kernel launches
// bound the step (docs/long-context.md).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <mutex>
#include <optional>

namespace aios {

class RotaryTable {
 public:
  explicit RotaryTable(double theta) : theta_(theta) {}

  // Rotates x [..., T, head_dim] whose tokens sit at positions start, start + 1, ...: each pair
  // (i, i + head_dim/2) turns by position · theta^(-2i/head_dim). Any leading dimensions (query
  // and key together, batch, heads).
  at::Tensor rotate(const at::Tensor& x, std::int64_t start);

 private:
  struct Key {
    std::int64_t start, time, head_dim;
    at::ScalarType dtype;
    at::Device device;
    bool inference;  // tables made under InferenceMode cannot be saved for a backward
    bool operator==(const Key&) const = default;
  };

  double theta_;
  std::mutex mutex_;  // checkpointed blocks may recompute on autograd's device threads
  std::optional<Key> key_;
  at::Tensor cos_, sin_;  // [T, head_dim]: (cos, cos) and (-sin, sin), in x's type
};

// The same through a table of its own (tests, and callers outside a model).
at::Tensor apply_rotary(const at::Tensor& x, std::int64_t start, double theta);

}  // namespace aios
