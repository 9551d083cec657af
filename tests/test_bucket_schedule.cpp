// The overlap schedule: buckets launch during the armed backward as their gradients become final,
// always in bucket order, each exactly once per step; finish launches the rest (unused
// parameters, or every bucket on a rank that failed before arming).
#include <ATen/ATen.h>

#include "distributed/bucket_schedule.h"

namespace aios {
namespace {

TEST(BucketSchedule, LaunchesInOrderDuringTheArmedBackwardOnly) {
  std::vector<at::Tensor> params;
  for (int i = 0; i < 4; ++i) params.push_back(at::randn({8}).requires_grad_(true));
  std::vector<std::size_t> launched;
  // Bucket 2 holds a parameter that gets no gradient: it can only go out at finish.
  BucketSchedule schedule(params, {{0}, {1}, {2, 3}}, [&](std::size_t b) { launched.push_back(b); });

  // Not armed (an earlier micro-batch): nothing goes out.
  (params[0] * 1 + params[1] * 2 + params[2] * 3).sum().backward();
  EXPECT_TRUE(launched.empty());

  schedule.arm();
  // Gradients become final in reverse order (bucket 1 first): bucket 1 waits for bucket 0.
  (params[0] * 1 + params[1] * 2 + params[2] * 3).sum().backward();
  EXPECT_EQ(launched, (std::vector<std::size_t>{0, 1}));
  EXPECT_EQ(schedule.launched_during_backward(), 2u);
  schedule.finish();
  EXPECT_EQ(launched, (std::vector<std::size_t>{0, 1, 2}));

  // A rank that failed before arming still issues every bucket, in order.
  launched.clear();
  schedule.finish();
  EXPECT_EQ(launched, (std::vector<std::size_t>{0, 1, 2}));
}

// A launch that fails (out of memory while staging its bucket) has not issued its collective: the
// bucket stays unlaunched, and finish launches it and the rest, so every rank still issues every
// collective exactly once and in the same order.
TEST(BucketSchedule, ALaunchThatThrowsIsLaunchedAgainAtFinish) {
  std::vector<at::Tensor> params;
  for (int i = 0; i < 3; ++i) params.push_back(at::randn({8}).requires_grad_(true));
  std::vector<std::size_t> issued;
  bool fail_once = true;
  BucketSchedule schedule(params, {{2}, {1}, {0}}, [&](std::size_t b) {
    if (b == 1 && fail_once) {
      fail_once = false;
      throw std::runtime_error("out of memory while staging bucket 1");
    }
    issued.push_back(b);
  });
  schedule.arm();
  EXPECT_ANY_THROW((params[0] * 1 + params[1] * 2 + params[2] * 3).sum().backward());
  EXPECT_EQ(issued, (std::vector<std::size_t>{0}));
  schedule.finish();
  EXPECT_EQ(issued, (std::vector<std::size_t>{0, 1, 2}));
}

}  // namespace
}  // namespace aios
