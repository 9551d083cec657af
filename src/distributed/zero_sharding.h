// ZeRO stage 1 (Rajbhandari et al. 2019): optimizer state sharded across ranks. Each parameter's
// flat elements are cut into `world` contiguous shards whose length is a multiple of 256 (the
// 8-bit quantization block), so a block never straddles two ranks and an 8-bit shard quantizes
// exactly as the whole tensor would. Rank r owns shard r of every parameter (the last shards may
// be short or empty) and keeps optimizer state for it only: optimizer memory per rank falls as
// 1/world.
//
// Per step: gradients are reduce-scattered (summed) so each rank receives its shards' sums, bucket
// by bucket during the step's last backward as gradients become final (distributed/bucket_schedule.h);
// the optimizer updates the shards in place (they are views of the parameters); the updated
// shards are all-gathered back into every rank's full parameters. Buckets of about `bucket_bytes`
// keep each collective large; they are cut in backward order (the last parameters first) and
// every rank walks them in the same order. On GPUs each reduce-scatter runs on NCCL's stream beside
// the rest of the backward. A parameter's full gradient is released as soon as it is staged for
// its reduce-scatter: after the last backward, a rank holds gradients for its own shards only.
#pragma once

#include <vector>

#include "distributed/bucket_schedule.h"
#include "distributed/gradient_sync.h"
#include "optim/blockwise_quantization.h"

namespace aios {

class ZeroSharding : public GradientSync {
 public:
  static constexpr std::int64_t kAlignment = kQuantizationBlock;
  // Elements of a `numel`-element parameter that each of `world` ranks owns (the last may own fewer).
  static std::int64_t elements_per_rank(std::int64_t numel, std::int64_t world) {
    return (numel + kAlignment * world - 1) / (kAlignment * world) * kAlignment;
  }

  // model_order: the model's parameters in forward order (buckets follow its reverse).
  ZeroSharding(const std::vector<Optimizer::Group>& groups, Comm& comm, std::int64_t bucket_bytes,
               const std::vector<at::Tensor>& model_order);

  std::string describe() const override { return "ZeRO-1"; }
  // The optimizer's groups: this rank's shard of each parameter (a view), with the whole
  // parameter's size so that the 8-bit decision is the same on every world size.
  std::vector<Optimizer::Group> optimizer_groups() const override;
  bool shards_optimizer_state() const override { return true; }
  void start() override { schedule_->arm(); }
  // This rank's shards' .grad hold the summed gradients; the full .grad are released.
  void finish() override;
  // The squared norms of every rank's shards, summed over ranks (a collective on the device); float64.
  at::Tensor global_norm(const std::vector<at::Tensor>& gradients) override;
  void after_update() override { all_gather_parameters(); }
  void all_gather_parameters();  // every rank's updated shards -> full parameters everywhere

  std::size_t buckets() const { return buckets_.size(); }
  const BucketSchedule& schedule() const { return *schedule_; }

 private:
  struct Slot {
    at::Tensor param;       // the full parameter
    at::Tensor shard;       // view: elements [rank·per_rank, rank·per_rank + its length)
    std::int64_t per_rank;  // elements per rank (a multiple of kAlignment)
    std::int64_t offset;    // into its bucket's per-rank row
    std::size_t pieces;     // ranks holding some of its elements: its entries in the bucket's piece lists
  };
  struct Bucket {
    std::vector<std::size_t> slots;
    std::int64_t row = 0;    // elements per rank: the sum of its slots' per_rank
    at::Tensor shard_grads;  // [row]: this rank's summed gradient shards (the optimizer reads views)
    // Views, for tensor-list copies: each parameter's pieces (rank r's elements) and where they
    // sit in rows_, in slot order; rows_'s padding; this rank's shards and their place in row_.
    std::vector<at::Tensor> param_pieces, row_pieces, pads, shards, shards_in_row;
  };

  // Full .grad of the bucket's parameters -> this rank's shards (the .grad are released).
  void reduce_scatter(std::size_t bucket);

  std::vector<Slot> slots_;
  std::vector<std::size_t> group_sizes_;
  std::vector<double> group_decay_;
  std::vector<Bucket> buckets_;  // in launch order
  // [world · largest row]: staging for reduce-scatter input / all-gather output, reused by the
  // next bucket once the previous bucket's reduce-scatter is done.
  at::Tensor rows_;
  at::Tensor row_;  // [largest row]: all-gather input
  Comm& comm_;
  std::unique_ptr<BucketSchedule> schedule_;
};

}  // namespace aios
