#include "distributed/bucket_schedule.h"

#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <algorithm>
#include <numeric>
#include <unordered_map>

namespace aios {
namespace {

struct GradientReadyHook : torch::autograd::PostAccumulateGradHook {
  GradientReadyHook(std::function<void()> ready) : ready_(std::move(ready)) {}
  void operator()(const torch::autograd::Variable&) override { ready_(); }
  std::function<void()> ready_;
};

}  // namespace

std::vector<std::vector<std::size_t>> make_buckets(const std::vector<std::int64_t>& numels,
                                                   std::int64_t bucket_elements) {
  std::vector<std::vector<std::size_t>> buckets;
  std::int64_t filled = 0;
  for (std::size_t i = 0; i < numels.size(); ++i) {
    if (buckets.empty() || filled + numels[i] > bucket_elements) {
      buckets.emplace_back();
      filled = 0;
    }
    buckets.back().push_back(i);
    filled += numels[i];
  }
  return buckets;
}

std::vector<std::size_t> backward_order(const std::vector<at::Tensor>& params,
                                        const std::vector<at::Tensor>& model_order) {
  std::unordered_map<const void*, std::size_t> position;
  for (std::size_t i = 0; i < model_order.size(); ++i) position.emplace(model_order[i].unsafeGetTensorImpl(), i);
  // Key: distance from the end of model_order (unknown parameters after every known one).
  const auto key = [&](const at::Tensor& p) {
    const auto found = position.find(p.unsafeGetTensorImpl());
    return found == position.end() ? model_order.size() : model_order.size() - 1 - found->second;
  };
  std::vector<std::size_t> order(params.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return key(params[a]) < key(params[b]); });
  return order;
}

BucketSchedule::BucketSchedule(std::vector<at::Tensor> params, std::vector<std::vector<std::size_t>> buckets,
                               std::function<void(std::size_t)> launch)
    : params_(std::move(params)),
      buckets_(std::move(buckets)),
      bucket_of_(params_.size(), 0),
      pending_(buckets_.size(), 0),
      launch_(std::move(launch)) {
  for (std::size_t b = 0; b < buckets_.size(); ++b) {
    for (auto i : buckets_[b]) bucket_of_[i] = b;
  }
  for (std::size_t i = 0; i < params_.size(); ++i) {
    torch::autograd::impl::set_post_acc_grad_hooks(
        params_[i], std::make_unique<GradientReadyHook>([this, i] { gradient_ready(i); }));
  }
}

BucketSchedule::~BucketSchedule() {
  for (auto& p : params_) torch::autograd::impl::set_post_acc_grad_hooks(p, nullptr);
}

void BucketSchedule::arm() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (std::size_t b = 0; b < buckets_.size(); ++b) pending_[b] = buckets_[b].size();
  next_ = 0;
  launched_in_backward_ = 0;
  pending_at_first_launch_ = 0;
  armed_ = true;
}

void BucketSchedule::gradient_ready(std::size_t param) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!armed_) return;  // an earlier micro-batch: gradients keep accumulating locally
  auto& pending = pending_[bucket_of_[param]];
  if (pending > 0) --pending;
  launch_ready_buckets();
}

void BucketSchedule::launch_ready_buckets() {
  while (next_ < buckets_.size() && pending_[next_] == 0) {
    if (launched_in_backward_ == 0) {
      pending_at_first_launch_ = 0;
      for (auto pending : pending_) pending_at_first_launch_ += pending;
    }
    launch_(next_);
    ++next_;
    ++launched_in_backward_;
  }
}

void BucketSchedule::finish() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!armed_) next_ = 0;  // never armed this step (a rank that failed early): launch them all
  while (next_ < buckets_.size()) {
    launch_(next_);
    ++next_;
  }
  armed_ = false;
}

}  // namespace aios
