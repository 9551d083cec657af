#include "distributed/gradient_all_reduce.h"

#include <ATen/ATen.h>

#include <algorithm>

namespace aios {

GradientAllReduce::GradientAllReduce(std::vector<Optimizer::Group> groups, const std::vector<at::Tensor>& model_order,
                                     Comm& comm, std::int64_t bucket_bytes)
    : groups_(std::move(groups)), comm_(comm) {
  std::vector<at::Tensor> params;
  for (const auto& group : groups_) params.insert(params.end(), group.params.begin(), group.params.end());
  for (auto i : backward_order(params, model_order)) params_.push_back(params[i]);
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
    if (p.grad().defined())
      slot.copy_(p.grad().reshape({-1}));
    else
      slot.zero_();
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
    if (p.grad().defined())
      p.mutable_grad().copy_(summed);
    else
      p.mutable_grad() = summed.clone();
    offset += p.numel();
  }
  in_flat_.reset();
}

void GradientAllReduce::finish() {
  schedule_->finish();
  at::NoGradGuard no_grad;
  copy_back_summed();
}

// Every rank holds the whole summed gradient: its norm is the global one.
at::Tensor GradientAllReduce::global_norm(const std::vector<at::Tensor>& gradients) {
  return gradients.empty() ? at::zeros({}, flat_.options()) : gradient_norm(gradients);
}

}  // namespace aios
