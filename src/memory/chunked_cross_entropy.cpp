#include "memory/chunked_cross_entropy.h"

#include <algorithm>

#include "kernels/fused_classifier.h"

namespace aios {

torch::Tensor chunked_cross_entropy_sum(const torch::Tensor& hidden, const torch::Tensor& weight,
                                        const torch::Tensor& targets, std::int64_t chunk_tokens) {
  return fused_classifier_loss_sum(hidden, weight, targets, chunk_tokens);
}

std::int64_t default_loss_chunk_tokens(std::int64_t vocab_size, std::int64_t bytes_per_logit) {
  constexpr std::int64_t kTargetBytes = 256LL << 20;
  return std::max<std::int64_t>(
      128, kTargetBytes / (std::max<std::int64_t>(1, bytes_per_logit) * std::max<std::int64_t>(1, vocab_size)));
}

void apply_chunked_loss(Gpt& model, std::int64_t chunk_tokens) {
  if (chunk_tokens <= 0) {
    model->set_loss_head(nullptr);
    return;
  }
  model->set_loss_head(
      [chunk_tokens](const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& targets) {
        return chunked_cross_entropy_sum(hidden.reshape({-1, hidden.size(-1)}), weight, targets.reshape({-1}),
                                         chunk_tokens);
      });
}

}  // namespace aios
