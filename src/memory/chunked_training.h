// Long windows trained in chunks of C tokens, so activation memory follows C, not the window W
// (docs/long-context.md). Two modes:
//
// truncated: chunk by chunk, forward then backward; each chunk attends to itself and to the
//   detached keys/values of the previous M tokens (segment recurrence, Transformer-XL). Gradients
//   do NOT flow across chunk boundaries: it is an approximation of whole-window training.
// exact: gradients equal whole-window training. A first pass without gradients runs the chunks
//   in order and keeps only every layer's keys/values; then, from the last chunk to the first,
//   each chunk is recomputed with gradients against the stored keys/values of earlier chunks (as
//   leaf tensors), and backward carries both its own loss and the gradients that later chunks
//   sent to its keys/values; the gradients it sends to earlier chunks' keys/values are kept for
//   them. Memory: keys/values of the whole window (2 · layers · W · width values) plus one
//   chunk's activations. Cost: about two forwards and one backward, like checkpointing.
//
// Dropout masks are replayed: each chunk's recomputation restores the RNG state its first pass
// used. With --gradient-checkpointing the blocks of each chunk are checkpointed too (the model's
// chunk block runner), so a chunk keeps only its blocks' inputs.
#pragma once

#include <array>
#include <functional>

#include "base/enum_names.h"
#include "memory/mixed_precision.h"
#include "model/gpt.h"

namespace aios {

enum class ChunkMode { kExact, kTruncated };
constexpr std::array<EnumName<ChunkMode>, 2> enum_names(ChunkMode) {
  return {{{ChunkMode::kExact, "exact"}, {ChunkMode::kTruncated, "truncated"}}};
}

struct ChunkedTraining {
  ChunkMode mode = ChunkMode::kExact;
  std::int64_t chunk = 0;   // tokens per chunk
  std::int64_t memory = 0;  // truncated: earlier tokens each chunk attends to (0 = the whole window)
};

// Forward and backward of one micro-batch: tokens and targets [B, W]. `scaled` turns a chunk's
// summed loss into what backward starts from (÷ tokens of the step, × fp16 loss scale);
// `before_last_backward` runs just before the micro-batch's last backward call. Returns the
// micro-batch's summed token loss (detached).
torch::Tensor chunked_forward_backward(Gpt& model, const torch::Tensor& tokens, const torch::Tensor& targets,
                                       const ChunkedTraining& options, const MixedPrecision& mp,
                                       const std::function<torch::Tensor(const torch::Tensor&)>& scaled,
                                       const std::function<void()>& before_last_backward);

}  // namespace aios
