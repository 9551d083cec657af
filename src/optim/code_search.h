// The nearest entry of a sorted 256-entry quantization map (optim/blockwise_quantization.h) in a
// few steps: a table indexed by a value's sign, exponent and top mantissa bits gives, for each
// bucket of values, an index at or below the first map entry >= any value of the bucket, and a
// forward scan of at most a few entries finds that entry exactly. The result is the binary
// search's (torch.searchsorted, then the nearer neighbour, ties to the larger) for every float, by
// construction: the table only says where the scan starts. The maps' entries are spaced evenly
// inside a decade and buckets are an octave cut in 64, so no bucket holds more than three entries.
//
// Compiled for the host (the table's construction, the tests) and the device (the 8-bit AdamW
// kernel), from the same source.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define AIOS_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define AIOS_HOST_DEVICE inline
#endif

namespace aios::code_search {

constexpr int kMantissaBits = 6;                            // buckets per octave: 64
constexpr int kSmallestExponent = 127 - 24;                 // |x| < 2^-24: the middle bucket
constexpr int kOctaves = 127 - kSmallestExponent + 1;       // 2^-24 .. 2^0
constexpr int kBucketsPerSide = kOctaves << kMantissaBits;  // 1600
constexpr int kBuckets = 2 * kBucketsPerSide + 1;           // negative, middle, positive
constexpr int kLastCode = 255;

AIOS_HOST_DEVICE std::uint32_t bits_of(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

// Monotone: x <= y gives bucket_of(x) <= bucket_of(y). Magnitudes above 2 share the outermost
// buckets (the values searched are within [-1, 1]).
AIOS_HOST_DEVICE int bucket_of(float x) {
  const std::uint32_t u = bits_of(x), magnitude = u & 0x7fffffffu;
  const int exponent = static_cast<int>(magnitude >> 23);
  if (exponent < kSmallestExponent) return kBucketsPerSide;
  int offset = ((exponent - kSmallestExponent) << kMantissaBits) |
               static_cast<int>((magnitude >> (23 - kMantissaBits)) & ((1u << kMantissaBits) - 1));
  offset = offset < kBucketsPerSide - 1 ? offset : kBucketsPerSide - 1;
  return (u >> 31) ? kBucketsPerSide - 1 - offset : kBucketsPerSide + 1 + offset;
}

// The first map entry >= x (255 when none is), starting from the table's entry for x's bucket.
AIOS_HOST_DEVICE int lower_bound(const float* map, const std::uint8_t* table, float x) {
  int k = table[bucket_of(x)];
  while (k < kLastCode && map[k] < x) ++k;
  return k;
}

// The nearer of the first entry >= x and its left neighbour; ties go to the larger.
AIOS_HOST_DEVICE std::uint8_t nearest_code(const float* map, const std::uint8_t* table, float x) {
  const int found = lower_bound(map, table, x);
  const int upper = found < 1 ? 1 : found;
  const float up = map[upper], down = map[upper - 1];
  return static_cast<std::uint8_t>(up - x <= x - down ? upper : upper - 1);
}

}  // namespace aios::code_search
