#include "distributed/zero_sharding.h"

#include <ATen/ATen.h>

#include <algorithm>

namespace aios {
namespace {

// Copies to[i] <- from[i] through one tensor-list copy: one multi-tensor kernel on CUDA rather than
// a launch per piece (a step touches every parameter twice here; docs/distributed.md has the
// measured effect on scaling).
void copy_pieces(const std::vector<at::Tensor>& to, const std::vector<at::Tensor>& from) {
  if (!to.empty()) at::_foreach_copy_(to, from);
}

}  // namespace

ZeroSharding::ZeroSharding(const std::vector<Optimizer::Group>& groups, Comm& comm, std::int64_t bucket_bytes,
                           const std::vector<at::Tensor>& model_order)
    : comm_(comm) {
  at::NoGradGuard no_grad;
  const std::int64_t world = comm.world(), rank = comm.rank();
  for (const auto& group : groups) {
    group_sizes_.push_back(group.params.size());
    group_decay_.push_back(group.weight_decay);
    for (const auto& p : group.params) {
      const std::int64_t n = p.numel();
      const std::int64_t per_rank = elements_per_rank(n, world);
      const std::int64_t start = std::min(n, rank * per_rank);
      const std::int64_t length = std::min(n, start + per_rank) - start;
      Slot slot{p, p.detach().view({-1}).narrow(0, start, length).requires_grad_(true), per_rank, 0,
                static_cast<std::size_t>((n + per_rank - 1) / per_rank)};
      slots_.push_back(std::move(slot));
    }
  }
  // Slots in the order backward finishes their gradients, cut into buckets of padded size.
  std::vector<at::Tensor> params;
  for (const auto& slot : slots_) params.push_back(slot.param);
  const auto order = backward_order(params, model_order);
  std::vector<std::int64_t> padded;
  for (auto i : order) padded.push_back(slots_[i].per_rank * world);
  const std::int64_t element_bytes =
      slots_.empty() ? 4 : static_cast<std::int64_t>(slots_.front().param.element_size());
  std::int64_t largest_row = 0;
  for (const auto& positions : make_buckets(padded, std::max<std::int64_t>(1, bucket_bytes / element_bytes))) {
    Bucket bucket;
    for (auto position : positions) bucket.slots.push_back(order[position]);
    for (auto i : bucket.slots) {
      slots_[i].offset = bucket.row;
      bucket.row += slots_[i].per_rank;
    }
    bucket.shard_grads = at::zeros({bucket.row}, slots_[bucket.slots.front()].param.options());
    largest_row = std::max(largest_row, bucket.row);
    buckets_.push_back(std::move(bucket));
  }
  if (!slots_.empty()) {
    rows_ = at::empty({world * largest_row}, slots_.front().param.options());
    row_ = at::empty({largest_row}, slots_.front().param.options());
  }
  // Each bucket's views, fixed for the run: in rows_ ([world, row] rank-major), the slot's region
  // of row r holds elements [r·per_rank, r·per_rank + length) of the parameter, then padding.
  for (auto& bucket : buckets_) {
    for (auto i : bucket.slots) {
      const auto& slot = slots_[i];
      const auto flat = slot.param.detach().view({-1});
      const std::int64_t n = flat.numel();
      for (std::int64_t r = 0; r < world; ++r) {
        // Ranks below slot.pieces hold elements; the rest of the row is padding.
        const std::int64_t start = std::min(n, r * slot.per_rank), length = std::min(n, start + slot.per_rank) - start;
        const std::int64_t at = r * bucket.row + slot.offset;
        if (static_cast<std::size_t>(r) < slot.pieces) {
          bucket.param_pieces.push_back(flat.narrow(0, start, length));
          bucket.row_pieces.push_back(rows_.narrow(0, at, length));
        }
        if (length < slot.per_rank) bucket.pads.push_back(rows_.narrow(0, at + length, slot.per_rank - length));
      }
      if (slot.shard.numel() > 0) {
        bucket.shards.push_back(slot.shard.detach());
        bucket.shards_in_row.push_back(row_.narrow(0, slot.offset, slot.shard.numel()));
      }
    }
  }
  for (auto& bucket : buckets_) {
    for (auto i : bucket.slots) {
      auto& slot = slots_[i];
      slot.shard.mutable_grad() = bucket.shard_grads.narrow(0, slot.offset, slot.shard.numel());
    }
  }
  std::vector<std::vector<std::size_t>> buckets;
  for (const auto& bucket : buckets_) buckets.push_back(bucket.slots);
  schedule_ = std::make_unique<BucketSchedule>(params, buckets, [this](std::size_t b) { reduce_scatter(b); });
}

std::vector<Optimizer::Group> ZeroSharding::optimizer_groups() const {
  std::vector<Optimizer::Group> groups;
  std::size_t next = 0;
  for (std::size_t g = 0; g < group_sizes_.size(); ++g) {
    Optimizer::Group group;
    group.weight_decay = group_decay_[g];
    for (std::size_t i = 0; i < group_sizes_[g]; ++i, ++next) {
      group.params.push_back(slots_[next].shard);
      group.full_numel.push_back(slots_[next].param.numel());
    }
    groups.push_back(std::move(group));
  }
  return groups;
}

void ZeroSharding::reduce_scatter(std::size_t b) {
  at::NoGradGuard no_grad;
  const std::int64_t world = comm_.world();
  auto& bucket = buckets_[b];
  // The previous bucket's reduce-scatter may still be reading rows_ on NCCL's stream.
  comm_.wait_for_collectives();
  // Rank-major rows: row r holds shard r of every parameter of the bucket, zero-padded.
  std::vector<at::Tensor> to, from, zeros = bucket.pads;
  std::size_t piece = 0;
  for (auto i : bucket.slots) {
    const auto& slot = slots_[i];
    if (slot.param.grad().defined()) {
      const auto grad = slot.param.grad().reshape({-1});
      for (std::size_t k = 0; k < slot.pieces; ++k) {
        to.push_back(bucket.row_pieces[piece + k]);
        from.push_back(grad.narrow(0, static_cast<std::int64_t>(k) * slot.per_rank, to.back().numel()));
      }
    } else {
      for (std::size_t k = 0; k < slot.pieces; ++k) zeros.push_back(bucket.row_pieces[piece + k]);
    }
    piece += slot.pieces;
  }
  copy_pieces(to, from);
  if (!zeros.empty()) at::_foreach_zero_(zeros);
  // Staged: the full gradients are not read again (the optimizer reads this rank's shards).
  // Released on the stream that read them, so their memory is reused only after the copy.
  for (auto i : bucket.slots) slots_[i].param.mutable_grad() = at::Tensor();
  auto input = rows_.narrow(0, 0, world * bucket.row);
  comm_.reduce_scatter_sum_async(input, bucket.shard_grads);
}

void ZeroSharding::finish() {
  schedule_->finish();
  comm_.wait_for_collectives();
}

at::Tensor ZeroSharding::global_norm(const std::vector<at::Tensor>& gradients) {
  at::NoGradGuard no_grad;
  // Summed in float64: the sum over ranks then rounds once, whatever the world size.
  at::Tensor squares = gradients.empty() ? at::zeros({}, rows_.options().dtype(at::kDouble))
                                         : gradient_norm(gradients).pow(2).to(at::kDouble);
  comm_.all_reduce_sum(squares);  // collective: every rank's share of the squared norm
  return squares.sqrt();
}

void ZeroSharding::all_gather_parameters() {
  at::NoGradGuard no_grad;
  const std::int64_t world = comm_.world();
  for (auto& bucket : buckets_) {
    copy_pieces(bucket.shards_in_row, bucket.shards);  // row_'s padding is gathered but never read
    auto gathered = rows_.narrow(0, 0, world * bucket.row);
    comm_.all_gather(row_.narrow(0, 0, bucket.row), gathered);
    copy_pieces(bucket.param_pieces, bucket.row_pieces);
  }
}

}  // namespace aios
