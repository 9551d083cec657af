#include "optim/blockwise_quantization.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "optim/code_search.h"

namespace aios {

at::Tensor dynamic_quantization_map(bool is_signed) {
  // bitsandbytes create_dynamic_map(signed, max_exponent_bits=7, total_bits=8): decade i covers
  // 10^(i-6)·[0.1, 1] with 2^i (signed) or 2^(i+1) (unsigned) points at the midpoints of an
  // even float32 linspace; then 0 and 1. Computed with the same float32 ops.
  constexpr int kExponentDecades = 7;
  std::vector<at::Tensor> parts;
  for (int i = 0; i < kExponentDecades; ++i) {
    const std::int64_t points = is_signed ? (std::int64_t{1} << i) : (std::int64_t{1} << (i + 1));
    const auto boundaries = at::linspace(0.1, 1.0, points + 1, at::kFloat);
    const auto means = (boundaries.slice(0, 0, points) + boundaries.slice(0, 1, points + 1)) / 2.0;
    const double decade = std::pow(10.0, -(kExponentDecades - 1) + i);
    parts.push_back(means * decade);
    if (is_signed) parts.push_back(means * -decade);
  }
  parts.push_back(at::zeros({1}, at::kFloat));
  parts.push_back(at::ones({1}, at::kFloat));
  return std::get<0>(at::sort(at::cat(parts)));
}

at::Tensor code_search_table(const at::Tensor& map) {
  using namespace code_search;
  const auto sorted = map.to(at::kFloat).cpu().contiguous();
  const float* begin = sorted.data_ptr<float>();
  const float* end = begin + sorted.numel();
  const auto first_at_least = [&](float value) {
    return static_cast<std::uint8_t>(std::min<std::ptrdiff_t>(std::lower_bound(begin, end, value) - begin, kLastCode));
  };
  const auto float_of = [](std::uint32_t bits) {
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
  };
  auto table = at::empty({kBuckets}, at::kByte);
  auto* start = table.data_ptr<std::uint8_t>();
  const std::uint32_t width = 1u << (23 - kMantissaBits);  // a bucket, in the float's bits
  for (std::uint32_t offset = 0; offset < kBucketsPerSide; ++offset) {
    // The bucket's smallest magnitude: exponent and top mantissa bits as bucket_of reads them.
    const std::uint32_t low = (((offset >> kMantissaBits) + kSmallestExponent) << 23) |
                              ((offset & ((1u << kMantissaBits) - 1)) << (23 - kMantissaBits));
    start[kBucketsPerSide + 1 + offset] = first_at_least(float_of(low));
    start[kBucketsPerSide - 1 - offset] = first_at_least(-float_of(low + width));
  }
  start[kBucketsPerSide] = first_at_least(-float_of(static_cast<std::uint32_t>(kSmallestExponent) << 23));
  return table;
}

void quantize_blockwise_into(const at::Tensor& values, const at::Tensor& map, at::Tensor& codes, at::Tensor& absmax) {
  at::NoGradGuard no_grad;
  const std::int64_t n = values.numel();
  const std::int64_t blocks = (n + kQuantizationBlock - 1) / kQuantizationBlock;
  auto flat = values.reshape({-1}).to(at::kFloat);
  // Pad with zeros to whole blocks: a zero changes no block's absmax.
  auto padded = at::constant_pad_nd(flat, {0, blocks * kQuantizationBlock - n}).view({blocks, kQuantizationBlock});
  absmax.copy_(padded.abs().amax(1));
  const auto divisor = at::where(absmax > 0, absmax, at::ones_like(absmax)).unsqueeze(1);
  const auto normalized = (padded / divisor).clamp(-1.0, 1.0).reshape({-1}).slice(0, 0, n).contiguous();
  // First map entry >= value, then the nearer of it and its left neighbour (ties: the larger).
  const auto upper = at::searchsorted(map, normalized).clamp(1, map.numel() - 1);
  const auto hi = map.index_select(0, upper), lo = map.index_select(0, upper - 1);
  const auto nearer_upper = (hi - normalized) <= (normalized - lo);
  codes.copy_(at::where(nearer_upper, upper, upper - 1).to(at::kByte));
}

BlockwiseQuantized quantize_blockwise(const at::Tensor& values, const at::Tensor& map) {
  const std::int64_t n = values.numel();
  BlockwiseQuantized q{
      at::empty({n}, values.options().dtype(at::kByte)),
      at::empty({(n + kQuantizationBlock - 1) / kQuantizationBlock}, values.options().dtype(at::kFloat))};
  quantize_blockwise_into(values, map, q.codes, q.absmax);
  return q;
}

at::Tensor dequantize_blockwise(const at::Tensor& codes, const at::Tensor& absmax, const at::Tensor& map) {
  at::NoGradGuard no_grad;
  const std::int64_t n = codes.numel();
  const auto scale = absmax.repeat_interleave(kQuantizationBlock).slice(0, 0, n);
  return map.index_select(0, codes.to(at::kLong)) * scale;
}

}  // namespace aios
