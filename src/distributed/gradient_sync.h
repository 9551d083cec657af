// Gradient synchronisation: what the training step asks of data parallelism, one interface for
// every way of running. The step calls, in order:
//   start()            before the step's last backward: from then on each bucket of gradients
//                      starts its collective as soon as backward has made all of them final;
//   finish()           after that backward (or after this rank failed in it): the buckets not yet
//                      started go out, and the optimizer's gradients hold the sum over ranks;
//   global_norm(...)   the L2 norm of the whole summed gradient, for clipping;
//   after_update()     after the optimizer step: every rank's parameters are the updated ones.
// Three implementations: LocalGradients (one process: nothing to do), GradientAllReduce (plain
// data parallel: every rank holds the whole summed gradient and updates every parameter) and
// ZeroSharding (ZeRO-1: each rank receives and updates only its shard of every parameter).
// start/finish/global_norm/after_update are collectives: every rank calls each once per step.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "distributed/comm.h"
#include "optim/optimizer.h"

namespace aios {

class GradientSync {
 public:
  virtual ~GradientSync() = default;

  virtual std::string describe() const = 0;  // "local", "all-reduce", "ZeRO-1"
  // The groups the optimizer updates: the model's parameters, or this rank's shards of them.
  virtual std::vector<Optimizer::Group> optimizer_groups() const = 0;
  // True when each rank's optimizer holds a shard of the state (checkpoints write one file per rank).
  virtual bool shards_optimizer_state() const { return false; }

  virtual void start() = 0;
  virtual void finish() = 0;
  // `gradients`: the optimizer's gradients (Optimizer::gradients()). A device scalar, no host sync.
  virtual at::Tensor global_norm(const std::vector<at::Tensor>& gradients) = 0;
  virtual void after_update() {}
};

// The sync for this run: local for one rank; ZeRO-1 when `shard_optimizer` and several ranks;
// plain all-reduce otherwise. `groups`: the optimizer groups over the whole model;
// `model_order`: the model's parameters in forward order (buckets follow its reverse);
// `bucket_bytes`: about how much each collective carries.
std::unique_ptr<GradientSync> make_gradient_sync(std::vector<Optimizer::Group> groups,
                                                 const std::vector<at::Tensor>& model_order, Comm& comm,
                                                 bool shard_optimizer, std::int64_t bucket_bytes);

}  // namespace aios
