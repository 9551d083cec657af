// The classifier at the end of a language model: logits = hidden · weightᵀ, softmax
// cross-entropy against the targets, and the gradients of the summed loss, formed in the forward
// while each chunk's logits exist. On CUDA one kernel per chunk reads the logits in their own type
// (bf16 under autocast) and writes the loss and, over the logits, their gradient: no float32
// [tokens × vocab] tensor is made. Elsewhere the same math runs as ATen ops (the reference).
// Not specific to GPT-2: any model with a linear head over a vocabulary uses it.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace aios {

// Per row of `logits` [rows, vocab]: the loss log Σ exp(x) − x[target] (float32; float64 for
// float64 logits), returned as [rows]. With `write_gradient`, `logits` is overwritten with the
// gradient of the rows' summed loss, softmax(x) − onehot(target), in its own type.
at::Tensor cross_entropy_rows_(at::Tensor& logits, const at::Tensor& targets, bool write_gradient);

// Which implementation cross_entropy_rows_ uses for logits like these: "fused CUDA kernel" or
// "ATen ops".
std::string cross_entropy_path(const at::Tensor& logits);

// Σ over tokens of the cross-entropy of hidden · weightᵀ, `chunk_tokens` rows of logits at a time.
// hidden: [N, C], weight: [V, C], targets: [N] int64. The matmuls run in the autocast type when
// called under autocast. Differentiable in hidden and weight: the gradients are formed in the
// forward (no recomputation), so its backward only scales them. The matmuls see the vocabulary
// padded with zero rows to a multiple of `vocabulary_multiple` (0: 64 on CUDA, where cuBLAS needs
// aligned shapes for its fast kernels, none elsewhere); the results are those of the unpadded head.
at::Tensor fused_classifier_loss_sum(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                                     std::int64_t chunk_tokens, std::int64_t vocabulary_multiple = 0);

}  // namespace aios
