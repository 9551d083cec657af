#include "memory/attention_backend.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/SDPBackend.h>
#include <c10/util/Exception.h>

#include <vector>

#include "base/error.h"

#if AIOS_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/native/transformers/cuda/sdp_utils.h>
#endif

namespace aios {
namespace {

struct Switches {
  bool flash, efficient, cudnn, math;
};

void set_switches(const Switches& s) {
  auto& context = at::globalContext();
  context.setSDPUseFlash(s.flash);
  context.setSDPUseMemEfficient(s.efficient);
  context.setSDPUseCuDNN(s.cudnn);
  context.setSDPUseMath(s.math);
}

// auto's rule, from measurements on Hopper (docs/benchmarks.md): cuDNN's attention saved 1.7 ms
// of a GPT-2 124M bf16 step against flash (H100 profile) and trained 16k and 64k windows 1.19x and
// 1.33x faster, so on Hopper with 16-bit inputs cuDNN goes first and flash stays enabled behind it (for what cuDNN
// refuses). Elsewhere flash first, cuDNN off: on Ampere and Ada cuDNN measured slower than flash
// in PyTorch's own benchmarks, and no other generation was measured here.
bool cudnn_first(const AttentionQuery& q) {
#if AIOS_WITH_CUDA
  if (!q.device.is_cuda() || (q.dtype != c10::kBFloat16 && q.dtype != c10::kHalf)) return false;
  const auto index = q.device.has_index() ? q.device.index() : at::cuda::current_device();
  return at::cuda::getDeviceProperties(index)->major == 9;
#else
  (void)q;
  return false;
#endif
}

void set_priority(bool cudnn_before_flash) {
  using B = at::SDPBackend;
  const std::vector<B> order =
      cudnn_before_flash
          ? std::vector<B>{B::cudnn_attention, B::flash_attention, B::efficient_attention, B::math, B::overrideable}
          : std::vector<B>{B::flash_attention, B::efficient_attention, B::math, B::cudnn_attention, B::overrideable};
  std::vector<std::int64_t> codes;
  for (const B backend : order) codes.push_back(static_cast<std::int64_t>(backend));
  at::globalContext().setSDPPriorityOrder(codes);
}

Switches switches_for(AttentionBackend requested, bool cudnn_preferred = false) {
  switch (requested) {
    case AttentionBackend::kAuto:
      return {true, true, cudnn_preferred, true};
    case AttentionBackend::kFlash:
      return {true, false, false, false};
    case AttentionBackend::kEfficient:
      return {false, true, false, false};
    case AttentionBackend::kCudnn:
      return {false, false, true, false};
    case AttentionBackend::kMath:
      return {false, false, false, true};
  }
  return {true, true, false, true};
}

std::string backend_name(std::int64_t choice) {
  // Compared by enumerator: the integer values differ between LibTorch builds.
  switch (static_cast<at::SDPBackend>(choice)) {
    case at::SDPBackend::flash_attention:
      return "flash";
    case at::SDPBackend::efficient_attention:
      return "efficient";
    case at::SDPBackend::cudnn_attention:
      return "cudnn";
    case at::SDPBackend::math:
      return "math";
    default:
      return "other (" + std::to_string(choice) + ")";
  }
}

// Collects ATen's warnings: when no enabled backend fits, ATen re-checks each with debug output
// and the reasons arrive as warnings before the error.
class WarningCollector : public c10::WarningHandler {
 public:
  void process(const c10::Warning& warning) override { messages.push_back(warning.msg()); }
  std::vector<std::string> messages;
};

struct Probe {
  std::string backend;  // empty when none of the enabled backends can run
  std::string reasons;
};

std::string joined(const std::vector<std::string>& messages) {
  std::string text;
  for (const auto& message : messages) text += (text.empty() ? "" : "; ") + message;
  return text;
}

// Same layout as the model's: q, k, v are strided views of one [B, T, 3, heads, head_dim] tensor.
at::Tensor probe_qkv(const AttentionQuery& q) {
  return at::empty({1, q.window, 3, q.heads, q.head_dim}, at::TensorOptions(q.device).dtype(q.dtype))
      .permute({2, 0, 3, 1, 4})
      .requires_grad_(true);
}

// Why the fused CUDA kernel `backend` refuses this query, in ATen's words: its own check, run with
// debug output (TORCH_WARN lines). Asked directly because ATen's selection, when nothing enabled
// fits, can end in a bare "Invalid backend" (LibTorch 2.11) instead of printing these reasons.
// Empty when the check passes or on the CPU (whose selection reports reasons itself).
std::string cuda_refusal(AttentionBackend backend, const AttentionQuery& q) {
#if AIOS_WITH_CUDA
  if (!q.device.is_cuda() || backend == AttentionBackend::kMath) return "";
  WarningCollector collector;
  c10::WarningUtils::WarningHandlerGuard guard(&collector);
  at::AutoGradMode grad(true);
  const auto qkv = probe_qkv(q);
  const sdp::sdp_params params{qkv[0],
                               qkv[1],
                               qkv[2],
                               std::nullopt,
                               q.dropout,
                               /*is_causal=*/true,
                               /*enable_gqa=*/false};
  bool fits = true;
  if (backend == AttentionBackend::kFlash) fits = sdp::can_use_flash_attention(params, /*debug=*/true);
  if (backend == AttentionBackend::kEfficient) fits = sdp::can_use_mem_efficient_attention(params, /*debug=*/true);
  if (backend == AttentionBackend::kCudnn) fits = sdp::can_use_cudnn_attention(params, /*debug=*/true);
  if (fits) return "";
  return collector.messages.empty() ? "refused without a reason from ATen" : joined(collector.messages);
#else
  (void)backend, (void)q;
  return "";
#endif
}

Probe probe(const AttentionQuery& q) {
  WarningCollector collector;
  c10::WarningUtils::WarningHandlerGuard guard(&collector);
  at::AutoGradMode grad(true);
  const auto qkv = probe_qkv(q);
  Probe result;
  try {
    result.backend = backend_name(at::_fused_sdp_choice(qkv[0], qkv[1], qkv[2], /*attn_mask=*/{}, q.dropout,
                                                        /*is_causal=*/true));
  } catch (const c10::Error& e) {
    result.reasons = e.what_without_backtrace();
  }
  if (!collector.messages.empty()) result.reasons = joined(collector.messages);
  return result;
}

}  // namespace

AttentionChoice configure_attention(AttentionBackend requested, const AttentionQuery& query) {
  const Switches wanted = switches_for(requested);
  if (query.device.is_cpu() && (requested == AttentionBackend::kEfficient || requested == AttentionBackend::kCudnn)) {
    throw Error("--attention", "'" + to_string(requested) + "' kernels exist only on CUDA; this run is on the CPU",
                "auto, flash or math on the CPU");
  }
  AttentionChoice choice{requested, "", ""};
  const bool prefer_cudnn = requested == AttentionBackend::kAuto && cudnn_first(query);
  set_priority(prefer_cudnn);
  if (requested == AttentionBackend::kAuto && !prefer_cudnn) {
    // Ask why flash alone would be refused, so the report can say it.
    set_switches(switches_for(AttentionBackend::kFlash));
    const Probe flash = probe(query);
    if (flash.backend != "flash") {
      const std::string reasons = cuda_refusal(AttentionBackend::kFlash, query);
      choice.note = "flash refused: " + (reasons.empty() ? flash.reasons : reasons);
    }
  }
  set_switches(prefer_cudnn ? switches_for(requested, true) : wanted);
  const Probe chosen = probe(query);
  if (prefer_cudnn && chosen.backend != "cudnn") {
    const std::string reasons = cuda_refusal(AttentionBackend::kCudnn, query);
    choice.note = "cuDNN (first on Hopper) refused: " + (reasons.empty() ? chosen.reasons : reasons);
  }
  if (chosen.backend.empty()) {
    const std::string reasons = cuda_refusal(requested, query);
    set_switches(switches_for(AttentionBackend::kAuto));
    throw Error("--attention",
                "the '" + to_string(requested) + "' kernel cannot run this model's attention (" +
                    std::string(c10::toString(query.dtype)) + ", head dim " + std::to_string(query.head_dim) +
                    ", window " + std::to_string(query.window) + " on " + query.device.str() +
                    "): " + (reasons.empty() ? chosen.reasons : reasons),
                "--attention auto, or flash/cudnn with --amp (bf16 or fp16 inputs)");
  }
  choice.backend = chosen.backend;
  return choice;
}

}  // namespace aios
