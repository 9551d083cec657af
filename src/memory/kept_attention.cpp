#include "memory/kept_attention.h"

#include <ATen/ATen.h>
#include <ATen/SDPBackend.h>
#include <torch/csrc/autograd/custom_function.h>

#include "model/gpt.h"

namespace aios {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr auto kCudnn = static_cast<std::int64_t>(at::SDPBackend::cudnn_attention);
constexpr auto kFlash = static_cast<std::int64_t>(at::SDPBackend::flash_attention);

// Forward: hands out the kept output (computed by the checkpointed forward from q, k, v of the same
// values). Backward: the kernel's own backward from the kept output and log-sum-exp.
struct ReplayedAttention : public torch::autograd::Function<ReplayedAttention> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               c10::intrusive_ptr<AttentionForwardState> state) {
    at::Tensor output = std::move(state->output);
    ctx->saved_data["state"] = c10::IValue::make_capsule(std::move(state));
    ctx->save_for_backward({q, k, v, output});
    return {output};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto state = c10::static_intrusive_pointer_cast<AttentionForwardState>(ctx->saved_data["state"].toCapsule());
    ctx->saved_data.erase("state");
    const auto saved = ctx->get_saved_variables();
    auto [dq, dk, dv] = state->backward(grad_outputs[0], saved[0], saved[1], saved[2], saved[3]);
    return {dq, dk, dv, at::Tensor()};
  }
};

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> AttentionForwardState::backward(const at::Tensor& grad_output,
                                                                               const at::Tensor& q, const at::Tensor& k,
                                                                               const at::Tensor& v,
                                                                               const at::Tensor& out) const {
  if (backend == kCudnn) {
    return at::_scaled_dot_product_cudnn_attention_backward(grad_output, q, k, v, out, logsumexp, philox_seed,
                                                            philox_offset, /*attn_bias=*/at::Tensor(), cum_seq_q,
                                                            cum_seq_k, max_q, max_k, /*dropout_p=*/0.0,
                                                            /*is_causal=*/true);
  }
  return at::_scaled_dot_product_flash_attention_backward(grad_output, q, k, v, out, logsumexp, cum_seq_q, cum_seq_k,
                                                          max_q, max_k, /*dropout_p=*/0.0, /*is_causal=*/true,
                                                          philox_seed, philox_offset);
}

at::Tensor KeptAttention::run_and_keep(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const std::int64_t backend = at::_fused_sdp_choice(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0, /*is_causal=*/true);
  // Flash pads a head width that is not a multiple of 8 around its kernels; such outputs are not kept.
  if (!q.is_cuda() || q.size(-1) % 8 != 0 || (backend != kCudnn && backend != kFlash)) {
    state_.reset();
    return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0, /*is_causal=*/true);
  }
  auto state = c10::make_intrusive<AttentionForwardState>();
  state->backend = backend;
  auto r = backend == kCudnn ? at::_scaled_dot_product_cudnn_attention(q, k, v, /*attn_bias=*/{},
                                                                       /*compute_log_sumexp=*/true, /*dropout_p=*/0.0,
                                                                       /*is_causal=*/true)
                             : at::_scaled_dot_product_flash_attention(q, k, v, /*dropout_p=*/0.0, /*is_causal=*/true);
  state->output = std::get<0>(r);
  state->logsumexp = std::get<1>(r);
  state->cum_seq_q = std::get<2>(r);
  state->cum_seq_k = std::get<3>(r);
  state->max_q = std::get<4>(r).guard_int(__FILE__, __LINE__);
  state->max_k = std::get<5>(r).guard_int(__FILE__, __LINE__);
  state->philox_seed = std::get<6>(r);
  state->philox_offset = std::get<7>(r);
  state_ = std::move(state);
  return state_->output;
}

at::Tensor KeptAttention::replay(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  return ReplayedAttention::apply(q, k, v, std::move(state_))[0];
}

c10::IValue KeptAttention::release() { return holds() ? c10::IValue::make_capsule(std::move(state_)) : c10::IValue(); }

KeptAttention KeptAttention::from(const c10::IValue& value) {
  KeptAttention kept;
  if (value.isCapsule()) kept.state_ = c10::static_intrusive_pointer_cast<AttentionForwardState>(value.toCapsule());
  return kept;
}

AttentionThroughKept::AttentionThroughKept(CausalSelfAttentionImpl& attention, KeptAttention& kept)
    : attention_(attention) {
  attention_.set_attention_runner([&kept](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
    return kept.holds() ? kept.replay(q, k, v) : kept.run_and_keep(q, k, v);
  });
}

AttentionThroughKept::~AttentionThroughKept() { attention_.set_attention_runner(nullptr); }

}  // namespace aios
