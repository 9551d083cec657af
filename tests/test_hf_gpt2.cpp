#include <gtest/gtest.h>

#include "base/error.h"
#include "model/hf_gpt2.h"
#include "model/safetensors.h"
#include "test_support.h"

namespace aios {
namespace {

const std::string kFixture = AIOS_SOURCE_DIR "/tests/reference/hf_gpt2_tiny";

TEST(HfGpt2, ProducesHuggingFaceLogits) {
  const GptConfig config = read_hf_gpt2_config(kFixture);
  EXPECT_EQ(config.n_layer, 2);
  EXPECT_EQ(config.vocab_size, 97);
  EXPECT_EQ(config.max_positions, 24);
  Gpt model(config);
  load_hf_gpt2_weights(kFixture, model);
  model->eval();
  const auto expected = read_safetensors(kFixture + "/expected.safetensors");
  torch::NoGradGuard no_grad;
  const auto logits = model->forward(expected.at("input_ids"));
  const auto reference = expected.at("logits");
  ASSERT_EQ(logits.sizes(), reference.sizes());
  // fp32 on both sides, different kernels and summation order: 1e-4 relative to the logit scale.
  const double scale = reference.abs().max().item<double>();
  EXPECT_LT((logits - reference).abs().max().item<double>(), 1e-4 * scale);
}

TEST(HfGpt2, ExportRoundTrips) {
  testing::ScratchDir dir;
  torch::manual_seed(3);
  GptConfig config = gpt_preset("tiny");
  config.n_layer = 1, config.vocab_size = 50, config.max_positions = 16;
  Gpt model(config);
  save_hf_gpt2(dir / "export", model);
  Gpt loaded(read_hf_gpt2_config(dir / "export"));
  load_hf_gpt2_weights(dir / "export", loaded);
  const auto a = model->parameters(), b = loaded->parameters();
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) ASSERT_TRUE(torch::equal(a[i], b[i])) << i;
}

TEST(HfGpt2, DamagedFilesAreNamed) {
  testing::ScratchDir dir;
  testing::write_file(dir / "m/config.json", testing::read_file(kFixture + "/config.json"));
  const std::string weights = testing::read_file(kFixture + "/model.safetensors");
  testing::write_file(dir / "m/model.safetensors", weights.substr(0, weights.size() - 100));
  Gpt model(read_hf_gpt2_config(dir / "m"));
  try {
    load_hf_gpt2_weights(dir / "m", model);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.safetensors"), std::string::npos) << e.what();
  }
  testing::write_file(dir / "m/model.safetensors", "\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ");
  EXPECT_THROW(load_hf_gpt2_weights(dir / "m", model), Error);
  EXPECT_THROW(read_hf_gpt2_config(dir / "missing"), Error);
}

}  // namespace
}  // namespace aios
