// Which scaled-dot-product-attention kernel runs: --attention auto|flash|efficient|cudnn|math.
// ATen picks the kernel per call from process-wide switches (at::globalContext().setSDPUse*);
// this module sets them once before training and asks ATen (at::_fused_sdp_choice) which kernel
// the model's attention will get, so the run reports it instead of guessing.
//
// auto enables flash, memory-efficient and math, in ATen's order; on Hopper with 16-bit inputs it
// enables cuDNN attention too and puts it first (measured faster there). A forced
// backend enables only that one; if it cannot run this model's attention (flash with fp32
// inputs, say) the run stops with ATen's reasons instead of falling back silently.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <array>
#include <cstdint>
#include <string>

#include "base/enum_names.h"

namespace aios {

enum class AttentionBackend { kAuto, kFlash, kEfficient, kCudnn, kMath };
constexpr std::array<EnumName<AttentionBackend>, 5> enum_names(AttentionBackend) {
  return {{{AttentionBackend::kAuto, "auto"},
           {AttentionBackend::kFlash, "flash"},
           {AttentionBackend::kEfficient, "efficient"},
           {AttentionBackend::kCudnn, "cudnn"},
           {AttentionBackend::kMath, "math"}}};
}

struct AttentionQuery {  // the attention call the model will make in training
  c10::Device device = c10::kCPU;
  c10::ScalarType dtype = c10::kFloat;  // the type q, k, v have (the autocast type under AMP)
  std::int64_t heads = 1;
  std::int64_t head_dim = 64;
  std::int64_t window = 256;
  double dropout = 0.0;
};

struct AttentionChoice {
  AttentionBackend requested = AttentionBackend::kAuto;
  std::string backend;  // what ATen will run: flash | efficient | cudnn | math
  std::string note;     // with auto: why the first-choice kernel was not chosen; empty otherwise
};

// Sets ATen's switches for `requested` and probes the backend. Throws aios::Error naming
// --attention with ATen's reasons when a forced backend cannot run.
AttentionChoice configure_attention(AttentionBackend requested, const AttentionQuery& query);

}  // namespace aios
