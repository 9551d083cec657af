#include "dist/gradient_sync.h"

#include <ATen/ATen.h>

#include <algorithm>

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

GradientAllReduce::GradientAllReduce(std::vector<at::Tensor> params, Comm& comm, std::int64_t bucket_bytes)
    : params_(std::move(params)), comm_(comm) {
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
  const auto& bucket = buckets_[b];
  std::int64_t offset = 0;
  for (auto i : bucket) {
    const auto& p = params_[i];
    auto slot = flat_.narrow(0, offset, p.numel());
    if (p.grad().defined()) slot.copy_(p.grad().reshape({-1})); else slot.zero_();
    offset += p.numel();
  }
  auto used = flat_.narrow(0, 0, offset);
  comm_.all_reduce_sum(used);
  offset = 0;
  for (auto i : bucket) {
    auto& p = params_[i];
    const auto summed = flat_.narrow(0, offset, p.numel()).view(p.sizes());
    if (p.grad().defined()) p.mutable_grad().copy_(summed); else p.mutable_grad() = summed.clone();
    offset += p.numel();
  }
}

}  // namespace aios
