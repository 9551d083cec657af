// Chunked cross-entropy through the tied LM head: the loss of N tokens is computed `chunk`
// tokens at a time, so the [N x vocab] logits (and their gradient) never exist at once. It is the
// fused classifier (kernels/fused_classifier.h) run in chunks: each chunk's gradient is formed in
// the forward while its logits exist (no recomputation, so no extra FLOPs); what stays alive until
// backward is the gradient of the hidden states [N x C] and of the head's weight [V x C]. Peak
// memory for the head falls from O(N·V) to O(chunk·V + V·C).
#pragma once

#include "model/gpt.h"

namespace aios {

// Sum over tokens of -log softmax(hidden · weightᵀ)[target]. hidden: [N, C], weight: [V, C],
// targets: [N] int64. Equal to the unchunked loss and gradients up to summation order.
torch::Tensor chunked_cross_entropy_sum(const torch::Tensor& hidden, const torch::Tensor& weight,
                                        const torch::Tensor& targets, std::int64_t chunk_tokens);

// Chunk size for a vocabulary when --loss-chunk-tokens is 0: about 256 MiB of logits, which are
// kept in the matmul type (2 bytes each under 16-bit autocast, 4 in float32).
std::int64_t default_loss_chunk_tokens(std::int64_t vocab_size, std::int64_t bytes_per_logit);

// Makes model->loss_sum use the chunked head (chunk_tokens <= 0: the plain head).
void apply_chunked_loss(Gpt& model, std::int64_t chunk_tokens);

}  // namespace aios
