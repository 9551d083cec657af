#include "dist/zero_sharding.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "dist/gradient_sync.h"

namespace aios {
namespace {

// A parameter's flat elements laid out as `rows` [world, chunk] (row r = rank r's chunk, the tail
// zero-padded) and back, copying views without staging buffers.
void flat_to_rows(const at::Tensor& flat, at::Tensor rows) {
  const std::int64_t n = flat.numel(), chunk = rows.size(1), full = n / chunk, rest = n % chunk;
  if (full > 0) rows.narrow(0, 0, full).copy_(flat.narrow(0, 0, full * chunk).view({full, chunk}));
  if (full == rows.size(0)) return;
  rows.narrow(0, full, rows.size(0) - full).zero_();
  if (rest > 0) rows[full].narrow(0, 0, rest).copy_(flat.narrow(0, full * chunk, rest));
}

void rows_to_flat(const at::Tensor& rows, at::Tensor flat) {
  const std::int64_t n = flat.numel(), chunk = rows.size(1), full = n / chunk, rest = n % chunk;
  if (full > 0) flat.narrow(0, 0, full * chunk).view({full, chunk}).copy_(rows.narrow(0, 0, full));
  if (rest > 0) flat.narrow(0, full * chunk, rest).copy_(rows[full].narrow(0, 0, rest));
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
      const std::int64_t chunk = chunk_elements(n, world);
      const std::int64_t start = std::min(n, rank * chunk);
      const std::int64_t length = std::min(n, start + chunk) - start;
      Slot slot{p, p.detach().view({-1}).narrow(0, start, length).requires_grad_(true), chunk, 0};
      slots_.push_back(std::move(slot));
    }
  }
  // Slots in the order backward finishes their gradients, cut into buckets of padded size.
  std::vector<at::Tensor> params;
  for (const auto& slot : slots_) params.push_back(slot.param);
  const auto order = backward_order(params, model_order);
  std::vector<std::int64_t> padded;
  for (auto i : order) padded.push_back(slots_[i].chunk * world);
  const std::int64_t element_bytes = slots_.empty() ? 4 : static_cast<std::int64_t>(slots_.front().param.element_size());
  std::int64_t largest_row = 0;
  for (const auto& positions : make_buckets(padded, std::max<std::int64_t>(1, bucket_bytes / element_bytes))) {
    Bucket bucket;
    for (auto position : positions) bucket.slots.push_back(order[position]);
    for (auto i : bucket.slots) {
      slots_[i].offset = bucket.row;
      bucket.row += slots_[i].chunk;
    }
    bucket.shard_grads = at::zeros({bucket.row}, slots_[bucket.slots.front()].param.options());
    largest_row = std::max(largest_row, bucket.row);
    buckets_.push_back(std::move(bucket));
  }
  if (!slots_.empty()) {
    rows_ = at::empty({world * largest_row}, slots_.front().param.options());
    row_ = at::empty({largest_row}, slots_.front().param.options());
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

std::vector<Optimizer::Group> ZeroSharding::shard_groups() const {
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
  // Rank-major rows: row r holds chunk r of every parameter of the bucket, zero-padded.
  auto input = rows_.narrow(0, 0, world * bucket.row);
  const auto rows = input.view({world, bucket.row});
  for (auto i : bucket.slots) {
    auto& slot = slots_[i];
    auto region = rows.narrow(1, slot.offset, slot.chunk);
    if (slot.param.grad().defined()) {
      flat_to_rows(slot.param.grad().reshape({-1}), region);
      // Staged: the full gradient is not read again (the optimizer reads this rank's chunk).
      // Released on the stream that read it, so its memory is reused only after the copy.
      slot.param.mutable_grad() = at::Tensor();
    } else {
      region.zero_();
    }
  }
  comm_.reduce_scatter_sum_async(input, bucket.shard_grads);
}

void ZeroSharding::finish() {
  schedule_->finish();
  comm_.wait_for_collectives();
}

void ZeroSharding::all_gather_parameters() {
  at::NoGradGuard no_grad;
  const std::int64_t world = comm_.world();
  for (auto& bucket : buckets_) {
    auto row = row_.narrow(0, 0, bucket.row);
    row.zero_();
    for (auto i : bucket.slots) {
      const auto& slot = slots_[i];
      row.narrow(0, slot.offset, slot.shard.numel()).copy_(slot.shard);
    }
    auto gathered = rows_.narrow(0, 0, world * bucket.row);
    comm_.all_gather(row, gathered);
    const auto rows = gathered.view({world, bucket.row});
    for (auto i : bucket.slots) {
      auto& slot = slots_[i];
      rows_to_flat(rows.narrow(1, slot.offset, slot.chunk), slot.param.detach().view({-1}));
    }
  }
}

}  // namespace aios
