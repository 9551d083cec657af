// Re-slicing ZeRO-1 optimizer shards to another world size. Shards are block-aligned contiguous
// shards of each parameter (distributed/zero_sharding.h), so concatenating the old ranks' pieces in rank
// order gives the whole parameter's state, and the new rank's piece is a slice of it: 8-bit codes
// and absmax are copied, never dequantized and requantized, so the state is bit-exact.
#pragma once

#include <torch/serialize/input-archive.h>

#include <string>
#include <vector>

#include "optim/optimizer.h"

namespace aios {

// `old`: the saved optimizer archives in rank order (one archive: unsharded state). `groups`: this
// rank's optimizer groups (full_numel, or the tensors themselves when unsharded, give each
// parameter's size). Returns the optimizer archive for `rank` of `world` (world 1: the whole
// state), ready for Optimizer::load. `source` names the checkpoint in errors.
torch::serialize::InputArchive reshard_optimizer_state(std::vector<torch::serialize::InputArchive>& old,
                                                       const std::vector<Optimizer::Group>& groups, int rank, int world,
                                                       const c10::Device& device, const std::string& source);

}  // namespace aios
