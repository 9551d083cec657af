// Activation (gradient) checkpointing: a block runs forward without keeping its activations and
// is recomputed during backward. Built as a custom autograd Function that receives the block's
// parameters as inputs and returns their gradients itself: parameter gradients then flow
// through the outer graph exactly once, the node exists even
// when the block's input needs no gradient, and post-accumulate-grad hooks fire once.
//
// The recomputation restores the forward's RNG state (so dropout masks match) and its autocast
// state, and runs with autocast's weight-cast cache off (pytorch#65766: a cast cached under
// no-grad would lose the weights' gradient). With keep_attention, a block without dropout run with
// gradients on keeps its attention output from the forward where the kernel allows
// (memory/kept_attention.h), and the recomputation runs only the attention's backward.
#pragma once

#include "model/gpt.h"

namespace aios {

// Runs `block` on `x` checkpointed. Gradients equal those of block->forward(x).
torch::Tensor checkpointed_block_forward(BlockImpl& block, const torch::Tensor& x, bool keep_attention = true);

// The same for a chunk of a long window (memory/chunked_training.h): the earlier tokens'
// keys/values are inputs, the chunk's own keys/values outputs; all get their gradients.
ChunkOutput checkpointed_block_forward_chunk(BlockImpl& block, const torch::Tensor& x, std::int64_t start,
                                             const torch::Tensor& past_keys, const torch::Tensor& past_values);

// Checkpoints every `every`-th block of `model` (blocks 0, every, 2·every, ...); every = 1
// checkpoints all blocks, 0 turns checkpointing off. keep_attention: as above (whole windows only;
// the chunks of a long window recompute their attention).
void apply_activation_checkpointing(Gpt& model, std::int64_t every, bool keep_attention = true);

}  // namespace aios
