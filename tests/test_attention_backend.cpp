// --attention: the backend ATen will run is reported, a forced backend that cannot run is an
// error that says why (never a silent fallback), and the choice reaches the metrics header.
#include <torch/cuda.h>

#include "memory/attention_backend.h"
#include "trainer_fixture.h"

namespace aios {
namespace {

AttentionQuery gpt2_like(c10::Device device, c10::ScalarType dtype) {
  return {device, dtype, /*heads=*/12, /*head_dim=*/64, /*window=*/256, /*dropout=*/0.0};
}

TEST(AttentionBackend, ForcedMathRunsAndCudaOnlyKernelsAreRefusedOnTheCpu) {
  EXPECT_EQ(configure_attention(AttentionBackend::kMath, gpt2_like(c10::kCPU, c10::kFloat)).backend, "math");
  const auto automatic = configure_attention(AttentionBackend::kAuto, gpt2_like(c10::kCPU, c10::kFloat));
  EXPECT_TRUE(automatic.backend == "flash" || automatic.backend == "math") << automatic.backend;
  for (const auto cuda_only : {AttentionBackend::kEfficient, AttentionBackend::kCudnn}) {
    const auto message = testing::error_of([&] { configure_attention(cuda_only, gpt2_like(c10::kCPU, c10::kFloat)); });
    EXPECT_NE(message.find("--attention"), std::string::npos) << message;
    EXPECT_NE(message.find("CUDA"), std::string::npos) << message;
  }
  configure_attention(AttentionBackend::kAuto, gpt2_like(c10::kCPU, c10::kFloat));
}

TEST(AttentionBackend, OnCudaFlashNeeds16BitInputsAndAutoSaysWhyNot) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device (runs in bench/run.sh test)";
  const c10::Device cuda(c10::kCUDA, 0);
  EXPECT_EQ(configure_attention(AttentionBackend::kFlash, gpt2_like(cuda, c10::kBFloat16)).backend, "flash");
  const auto message =
      testing::error_of([&] { configure_attention(AttentionBackend::kFlash, gpt2_like(cuda, c10::kFloat)); });
  EXPECT_NE(message.find("--attention"), std::string::npos) << message;
  // ATen's own reason (its dtype check), not only our summary of the query or a bare "Invalid
  // backend" (what LibTorch 2.11's selection says when nothing enabled fits).
  EXPECT_NE(message.find("dtype"), std::string::npos) << "ATen's reason names the dtype: " << message;
  EXPECT_EQ(message.find("Invalid backend"), std::string::npos) << message;
  const auto fp32 = configure_attention(AttentionBackend::kAuto, gpt2_like(cuda, c10::kFloat));
  EXPECT_EQ(fp32.backend, "efficient");
  EXPECT_EQ(fp32.note.rfind("flash refused", 0), 0u) << fp32.note;
  EXPECT_NE(fp32.note.find("dtype"), std::string::npos) << fp32.note;
  EXPECT_EQ(configure_attention(AttentionBackend::kEfficient, gpt2_like(cuda, c10::kFloat)).backend, "efficient");
  configure_attention(AttentionBackend::kAuto, gpt2_like(cuda, c10::kFloat));
}

TEST_F(TrainerTest, TheBackendUsedIsInTheMetricsHeaderAndForcingMathChangesNothing) {
  std::vector<double> losses;
  for (const char* attention : {"auto", "math"}) {
    auto o = options(attention);
    o.memory.attention = *enum_from_string<AttentionBackend>(attention);
    o.run.log_file = dir_ / (std::string(attention) + ".jsonl");
    const auto summary = train(o);
    const auto header = records_of(o.run.log_file, "config").at(0);
    EXPECT_EQ(header["attention"]["requested"], attention);
    EXPECT_EQ(header["attention"]["backend"], summary.attention_backend);
    losses.push_back(summary.last_loss);
  }
  EXPECT_NEAR(losses[0], losses[1], 1e-4 * losses[0]);
}

}  // namespace
}  // namespace aios
