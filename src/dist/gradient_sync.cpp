#include "dist/gradient_sync.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <numeric>
#include <unordered_map>

namespace aios {

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
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return key(params[a]) < key(params[b]); });
  return order;
}

GradientAllReduce::GradientAllReduce(const std::vector<at::Tensor>& params, Comm& comm, std::int64_t bucket_bytes)
    : comm_(comm) {
  for (auto i : backward_order(params, params)) params_.push_back(params[i]);
  std::vector<std::int64_t> numels;
  for (const auto& p : params_) numels.push_back(p.numel());
  const std::int64_t element_bytes = params_.empty() ? 4 : static_cast<std::int64_t>(params_.front().element_size());
  buckets_ = make_buckets(numels, std::max<std::int64_t>(1, bucket_bytes / element_bytes));
  std::int64_t largest = 0;
  for (const auto& bucket : buckets_) {
    std::int64_t size = 0;
    for (auto i : bucket) size += numels[i];
    largest = std::max(largest, size);
  }
  if (!params_.empty()) flat_ = at::empty({largest}, params_.front().options());
  schedule_ = std::make_unique<BucketSchedule>(params_, buckets_, [this](std::size_t b) { launch(b); });
}

void GradientAllReduce::launch(std::size_t b) {
  at::NoGradGuard no_grad;
  // The previous bucket's sum may still be running on NCCL's stream: wait for it (the current
  // stream only, after the backward work queued so far) and copy it back before reusing flat_.
  copy_back_summed();
  std::int64_t offset = 0;
  for (auto i : buckets_[b]) {
    const auto& p = params_[i];
    auto slot = flat_.narrow(0, offset, p.numel());
    if (p.grad().defined()) slot.copy_(p.grad().reshape({-1})); else slot.zero_();
    offset += p.numel();
  }
  auto used = flat_.narrow(0, 0, offset);
  comm_.all_reduce_sum_async(used);
  in_flat_ = b;
}

void GradientAllReduce::copy_back_summed() {
  if (!in_flat_) return;
  comm_.wait_for_collectives();
  std::int64_t offset = 0;
  for (auto i : buckets_[*in_flat_]) {
    auto& p = params_[i];
    const auto summed = flat_.narrow(0, offset, p.numel()).view(p.sizes());
    if (p.grad().defined()) p.mutable_grad().copy_(summed); else p.mutable_grad() = summed.clone();
    offset += p.numel();
  }
  in_flat_.reset();
}

void GradientAllReduce::finish() {
  schedule_->finish();
  at::NoGradGuard no_grad;
  copy_back_summed();
}

}  // namespace aios
