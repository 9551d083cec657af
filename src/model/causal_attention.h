// Causal attention of a chunk's queries over earlier tokens' keys plus their own: query i (at
// position past + i) sees keys 0 .. past + i, a causal mask aligned to the lower right. SDPA's
// is_causal aligns to the upper left when queries are fewer than keys, so it cannot say this.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace aios {

// q [B, heads, T, head_dim]; keys/values [B, heads, past + T, head_dim], all of q's dtype.
at::Tensor causal_attention_after_past(const at::Tensor& q, const at::Tensor& keys, const at::Tensor& values,
                                       double dropout);

// cuDNN attention off for the object's lifetime, unless it is the only backend on (--attention
// cudnn stays the user's choice). Used where cuDNN is the wrong kernel: under an explicit mask, and
// in generation and evaluation, where it plans a graph for every new sequence length, which costs
// more than the attention itself.
class CudnnAttentionOff {
 public:
  CudnnAttentionOff();
  ~CudnnAttentionOff();
  CudnnAttentionOff(const CudnnAttentionOff&) = delete;
  CudnnAttentionOff& operator=(const CudnnAttentionOff&) = delete;

 private:
  bool was_on_;
};

// Which kernel causal_attention_after_past runs for these inputs, in words (for the run's header).
std::string causal_attention_after_past_kernel(const at::Tensor& q, const at::Tensor& keys, double dropout);

}  // namespace aios
