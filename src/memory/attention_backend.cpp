#include "memory/attention_backend.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/SDPBackend.h>
#include <c10/util/Exception.h>

#include <vector>

#include "base/error.h"

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

Switches switches_for(const std::string& requested) {
  if (requested == "auto") return {true, true, false, true};
  if (requested == "flash") return {true, false, false, false};
  if (requested == "efficient") return {false, true, false, false};
  if (requested == "cudnn") return {false, false, true, false};
  if (requested == "math") return {false, false, false, true};
  throw Error("--attention", "unknown backend '" + requested + "'", "auto, flash, efficient, cudnn or math");
}

std::string backend_name(std::int64_t choice) {
  // Compared by enumerator: the integer values differ between LibTorch builds.
  switch (static_cast<at::SDPBackend>(choice)) {
    case at::SDPBackend::flash_attention: return "flash";
    case at::SDPBackend::efficient_attention: return "efficient";
    case at::SDPBackend::cudnn_attention: return "cudnn";
    case at::SDPBackend::math: return "math";
    default: return "other (" + std::to_string(choice) + ")";
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

Probe probe(const AttentionQuery& q) {
  WarningCollector collector;
  c10::WarningUtils::WarningHandlerGuard guard(&collector);
  at::AutoGradMode grad(true);
  // Same layout as the model's: q, k, v are strided views of one [B, T, 3, heads, head_dim] tensor.
  const auto qkv = at::empty({1, q.window, 3, q.heads, q.head_dim}, at::TensorOptions(q.device).dtype(q.dtype))
                       .permute({2, 0, 3, 1, 4})
                       .requires_grad_(true);
  Probe result;
  try {
    result.backend = backend_name(at::_fused_sdp_choice(qkv[0], qkv[1], qkv[2], /*attn_mask=*/{}, q.dropout,
                                                        /*is_causal=*/true));
  } catch (const c10::Error& e) {
    result.reasons = e.what_without_backtrace();
  }
  std::string warnings;
  for (const auto& message : collector.messages) warnings += (warnings.empty() ? "" : "; ") + message;
  if (!warnings.empty()) result.reasons = warnings;
  return result;
}

}  // namespace

AttentionChoice configure_attention(const std::string& requested, const AttentionQuery& query) {
  const Switches wanted = switches_for(requested);
  if (query.device.is_cpu() && (requested == "efficient" || requested == "cudnn")) {
    throw Error("--attention", "'" + requested + "' kernels exist only on CUDA; this run is on the CPU",
                "auto, flash or math on the CPU");
  }
  AttentionChoice choice{requested, "", ""};
  if (requested == "auto") {
    // Ask why flash alone would be refused, so the report can say it.
    set_switches(switches_for("flash"));
    const Probe flash = probe(query);
    if (flash.backend != "flash") choice.note = "flash refused: " + flash.reasons;
  }
  set_switches(wanted);
  const Probe chosen = probe(query);
  if (chosen.backend.empty()) {
    set_switches(switches_for("auto"));
    throw Error("--attention", "the '" + requested + "' kernel cannot run this model's attention (" +
                                   std::string(c10::toString(query.dtype)) + ", head dim " +
                                   std::to_string(query.head_dim) + ", window " + std::to_string(query.window) +
                                   " on " + query.device.str() + "): " + chosen.reasons,
                "--attention auto, or flash/cudnn with --amp (bf16 or fp16 inputs)");
  }
  choice.backend = chosen.backend;
  return choice;
}

}  // namespace aios
