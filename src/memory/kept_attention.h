// A checkpointed block's attention output, kept from its forward for its recomputation, which then
// runs only the attention's backward: the attention's forward is not run twice. The cost is the
// output ([B, T, C] in the compute type) and the log-sum-exp ([B, heads, T] float32) of each
// checkpointed block, held from its forward to its backward; with 16 windows of 1024 tokens of
// GPT-2 124M, 24 MiB a block and 0.29 GiB in all by arithmetic.
//
// Only where the attention kernel that SDPA picks is cuDNN's or flash: their backward takes the
// forward's output and log-sum-exp as inputs (ATen's _scaled_dot_product_{cudnn,flash}_attention
// and their _backward). Elsewhere (the CPU, the math and memory-efficient kernels) nothing is kept
// and the recomputation runs the attention again. Not with dropout: the recomputation replays the
// block's random numbers in their order, which a skipped attention would shift.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>

#include <cstdint>
#include <tuple>

namespace aios {

class CausalSelfAttentionImpl;

// What a kernel's backward needs besides q, k, v and the output's gradient.
struct AttentionForwardState : torch::CustomClassHolder {
  std::int64_t backend = -1;  // at::SDPBackend of the kernel that ran
  at::Tensor output, logsumexp, cum_seq_q, cum_seq_k, philox_seed, philox_offset;
  std::int64_t max_q = 0, max_k = 0;

  // The gradients of q, k, v from the output's, by the kernel's backward.
  std::tuple<at::Tensor, at::Tensor, at::Tensor> backward(const at::Tensor& grad_output, const at::Tensor& q,
                                                          const at::Tensor& k, const at::Tensor& v,
                                                          const at::Tensor& output) const;
};

class KeptAttention {
 public:
  // Causal attention of q, k, v [B, heads, T, head_dim]: with cuDNN's or flash's kernel (whichever
  // SDPA would pick), keeping what their backward needs; with SDPA, keeping nothing, otherwise.
  at::Tensor run_and_keep(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);
  bool holds() const { return state_ && state_->output.defined(); }
  // The kept output as the attention of q, k, v (recomputed inputs of the same values), with a
  // gradient function that runs the kernel's backward. Hands the kept tensors over: holds() is
  // false afterwards.
  at::Tensor replay(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

  // For an autograd context's saved data: the kept tensors as one IValue, and back.
  c10::IValue release();
  static KeptAttention from(const c10::IValue& value);

 private:
  c10::intrusive_ptr<AttentionForwardState> state_;
};

// For the object's lifetime, `attention`'s causal attention (without earlier tokens) runs through
// `kept`: run_and_keep while it holds nothing (the checkpointed forward), replay once it does (the
// recomputation).
class AttentionThroughKept {
 public:
  AttentionThroughKept(CausalSelfAttentionImpl& attention, KeptAttention& kept);
  ~AttentionThroughKept();
  AttentionThroughKept(const AttentionThroughKept&) = delete;
  AttentionThroughKept& operator=(const AttentionThroughKept&) = delete;

 private:
  CausalSelfAttentionImpl& attention_;
};

}  // namespace aios
