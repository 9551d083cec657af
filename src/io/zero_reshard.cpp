#include "io/zero_reshard.h"

#include <ATen/ATen.h>
#include <torch/serialize/output-archive.h>

#include <sstream>

#include "base/error.h"
#include "distributed/zero_sharding.h"

namespace aios {
namespace {

constexpr std::int64_t kBlock = ZeroSharding::kAlignment;  // 8-bit absmax: one per kBlock elements

// "codes_avg.1.7" -> ("codes_avg", 1, 7); false for keys without a group.index suffix.
bool split_key(const std::string& key, std::string& kind, std::size_t& group, std::size_t& index) {
  const auto last = key.rfind('.');
  if (last == std::string::npos) return false;
  const auto middle = key.rfind('.', last - 1);
  if (middle == std::string::npos) return false;
  try {
    group = std::stoul(key.substr(middle + 1, last - middle - 1));
    index = std::stoul(key.substr(last + 1));
  } catch (const std::exception&) {
    return false;
  }
  kind = key.substr(0, middle);
  return true;
}

}  // namespace

torch::serialize::InputArchive reshard_optimizer_state(std::vector<torch::serialize::InputArchive>& old,
                                                       const std::vector<Optimizer::Group>& groups, int rank, int world,
                                                       const c10::Device& device, const std::string& source) {
  torch::serialize::OutputArchive out;
  for (const auto& key : old.front().keys()) {
    std::string kind;
    std::size_t g = 0, i = 0;
    at::Tensor first;
    if (!split_key(key, kind, g, i) || !old.front().try_read(key, first, /*is_buffer=*/true)) {
      c10::IValue value;  // map id, block size, step counts: the same on every rank
      if (old.front().try_read(key, value)) out.write(key, value);
      continue;
    }
    if (g >= groups.size() || i >= groups[g].params.size()) {
      throw Error(source, "optimizer state '" + key + "' has no parameter in this model",
                  "a checkpoint of the same model");
    }
    if (first.dim() == 0) {  // a step counter: replicated
      out.write(key, first, /*is_buffer=*/true);
      continue;
    }
    std::vector<at::Tensor> pieces;
    for (auto& archive : old) {
      at::Tensor piece;
      archive.read(key, piece, /*is_buffer=*/true);
      pieces.push_back(piece.to(at::kCPU).reshape({-1}));
    }
    const auto whole = at::cat(pieces);
    const std::int64_t n = groups[g].full_numel.empty() ? groups[g].params[i].numel() : groups[g].full_numel[i];
    const std::int64_t per_rank = ZeroSharding::elements_per_rank(n, world);
    const std::int64_t start = std::min(n, rank * per_rank), length = std::min(n, start + per_rank) - start;
    const bool per_block = kind.rfind("absmax", 0) == 0;
    const std::int64_t expected = per_block ? (n + kBlock - 1) / kBlock : n;
    if (whole.numel() != expected) {
      throw Error(source, "optimizer state '" + key + "' holds " + std::to_string(whole.numel()) +
                              " values over all shards, not " + std::to_string(expected));
    }
    const auto slice =
        per_block ? whole.narrow(0, start / kBlock, (length + kBlock - 1) / kBlock) : whole.narrow(0, start, length);
    const auto& like = groups[g].params[i];  // unsharded moments keep the parameter's shape
    const bool whole_shape = world == 1 && !per_block && slice.numel() == like.numel() && kind.rfind("exp_avg", 0) == 0;
    out.write(key, (whole_shape ? slice.view(like.sizes()) : slice).clone().to(device), /*is_buffer=*/true);
  }
  std::stringstream buffer;
  out.save_to(buffer);
  torch::serialize::InputArchive resliced;
  resliced.load_from(buffer, device);
  return resliced;
}

}  // namespace aios
