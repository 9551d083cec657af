// Blockwise 8-bit AdamW: the dynamic maps, quantization error bounds, the kernel's code search, the first step against
// fp32 AdamW, the CUDA kernel against the ATen reference (GPU), training within 2% of fp32 AdamW over 200 steps, the
// state size, and bit-identical resume.
#include <ATen/ATen.h>
#include <torch/cuda.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "optim/adamw.h"
#include "optim/adamw_8bit.h"
#include "optim/blockwise_quantization.h"
#include "optim/code_search.h"
#include "trainer_fixture.h"

namespace aios {
namespace {

TEST(BlockwiseQuantization, DynamicMapsHaveTheDocumentedShape) {
  const auto s = dynamic_quantization_map(true), u = dynamic_quantization_map(false);
  for (const auto& map : {s, u}) {
    ASSERT_EQ(map.numel(), 256);
    EXPECT_TRUE(at::all(map.slice(0, 1) > map.slice(0, 0, 255)).item<bool>()) << "sorted, distinct";
    EXPECT_EQ(map[255].item<float>(), 1.0f);
    EXPECT_EQ((map == 0).sum().item<int64_t>(), 1);
  }
  // Signed: 127 negatives down to -0.99297, positives from 5.5e-7; unsigned: none negative,
  // smallest positive 3.25e-7, largest below one 0.99648 (bitsandbytes' figures).
  EXPECT_EQ((s < 0).sum().item<int64_t>(), 127);
  EXPECT_NEAR(s[0].item<float>(), -0.99297f, 1e-5);
  EXPECT_NEAR(s[128].item<float>(), 5.5e-7f, 1e-12);
  EXPECT_EQ((u < 0).sum().item<int64_t>(), 0);
  EXPECT_NEAR(u[1].item<float>(), 3.25e-7f, 1e-12);
  EXPECT_NEAR(u[254].item<float>(), 0.99648f, 1e-5);
}

TEST(BlockwiseQuantization, RoundTripErrorIsBoundedByHalfTheLargestCodeGap) {
  torch::manual_seed(0);
  // 10,007 values (a ragged last block) with heavy outliers: each block only pays for its own.
  auto values = at::randn({10007}) * at::exp(at::randn({10007}) * 2);
  for (bool is_signed : {true, false}) {
    const auto map = dynamic_quantization_map(is_signed);
    const auto x = is_signed ? values : values.abs();
    const auto q = quantize_blockwise(x, map);
    ASSERT_EQ(q.absmax.numel(), (10007 + 255) / 256);
    const auto restored = dequantize_blockwise(q.codes, q.absmax, map);
    const auto gaps = map.slice(0, 1) - map.slice(0, 0, 255);
    // Largest error relative to the block's absmax: half the widest gap, or below the lowest code.
    const double bound = std::max(gaps.max().item<double>() / 2, 1.0 + map[0].item<double>()) + 1e-6;
    const auto scale = q.absmax.repeat_interleave(256).slice(0, 0, 10007);
    const double worst = ((restored - x).abs() / scale).max().item<double>();
    EXPECT_LE(worst, bound) << (is_signed ? "signed" : "unsigned");
    // The typical value does much better than the bound: the mean relative error is small.
    EXPECT_LT(((restored - x).abs() / scale).mean().item<double>(), 0.0025);
    // A block's largest magnitude survives exactly (it maps to 1.0) when positive.
    EXPECT_TRUE(at::allclose(restored.index_select(0, x.view({-1}).argmax().view({1})), x.max().view({1})));
  }
}

// The 8-bit kernel's code search (optim/code_search.h, the same source compiled for the host here)
// against the reference's rule, torch.searchsorted then the nearer neighbour, on every map entry,
// the floats next to each entry and to each midpoint (where the rule's ties and its ">=" decide),
// zeros, denormals, and a million values spread over every decade of [-1, 1]. Also how far the
// scan walks from the table's start: at most three entries, or the table is too coarse.
TEST(BlockwiseQuantization, TableSearchFindsTheCodesOfTheBinarySearch) {
  torch::manual_seed(3);
  for (bool is_signed : {true, false}) {
    const auto map = dynamic_quantization_map(is_signed);
    const auto table = code_search_table(map);
    ASSERT_EQ(table.numel(), code_search::kBuckets);
    const float* m = map.data_ptr<float>();
    const std::uint8_t* t = table.data_ptr<std::uint8_t>();
    std::vector<float> values = {0.0f, -0.0f, 1.0f, -1.0f, 1e-45f, -1e-45f, 1e-30f, -1e-30f, 5.96e-8f, -5.96e-8f};
    for (int i = 0; i < 256; ++i) {
      for (float x : {m[i], i > 0 ? (m[i - 1] + m[i]) / 2 : m[i]}) {
        values.push_back(x);
        values.push_back(std::nextafter(x, 2.0f));
        values.push_back(std::nextafter(x, -2.0f));
      }
    }
    const auto magnitudes = at::pow(10.0, at::rand({1'000'000}, at::kDouble) * -9.0);
    const auto signs = is_signed ? at::where(at::rand({1'000'000}) < 0.5, -1.0, 1.0) : at::ones({1'000'000});
    const auto random = (magnitudes * signs).to(at::kFloat).contiguous();
    values.insert(values.end(), random.data_ptr<float>(), random.data_ptr<float>() + random.numel());

    const auto x = at::from_blob(values.data(), {static_cast<std::int64_t>(values.size())}, at::kFloat)
                       .clamp(-1.0, 1.0)
                       .contiguous();
    const auto upper = at::searchsorted(map, x).clamp(1, 255);
    const auto hi = map.index_select(0, upper), lo = map.index_select(0, upper - 1);
    const auto expected = at::where((hi - x) <= (x - lo), upper, upper - 1).to(at::kByte).contiguous();
    const float* xs = x.data_ptr<float>();
    const std::uint8_t* want = expected.data_ptr<std::uint8_t>();
    int mismatches = 0, longest_scan = 0;
    for (std::int64_t i = 0; i < x.numel(); ++i) {
      const std::uint8_t got = code_search::nearest_code(m, t, xs[i]);
      if (got != want[i] && ++mismatches <= 5) {
        ADD_FAILURE() << (is_signed ? "signed" : "unsigned") << " map, x = " << xs[i] << ": code " << int(got)
                      << ", the binary search's " << int(want[i]);
      }
      longest_scan = std::max(longest_scan, code_search::lower_bound(m, t, xs[i]) - t[code_search::bucket_of(xs[i])]);
    }
    EXPECT_EQ(mismatches, 0) << (is_signed ? "signed" : "unsigned");
    EXPECT_LE(longest_scan, 3) << (is_signed ? "signed" : "unsigned");
  }
}

std::vector<at::Tensor> random_like(const std::vector<at::Tensor>& params, int seed) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<at::Tensor> out;
  for (const auto& p : params) out.push_back(at::randn(p.sizes(), generator, p.options()));
  return out;
}

TEST(AdamW8bit, FirstStepEqualsFp32AdamW) {
  // From zero state the first update uses the unquantized new moments: it is AdamW's, exactly
  // up to float rounding. Covers the decay order and bias correction.
  std::vector<at::Tensor> a = {at::randn({64, 80}), at::randn({100})}, b;
  for (auto& t : a) b.push_back(t.clone());
  AdamWSettings settings{1e-2, 0.9, 0.95, 1e-8, 0.1, false};
  AdamW fp32({{{a[0]}, 0.1}, {{a[1]}, 0.0}}, settings);
  AdamW8bit eight({{{b[0]}, 0.1}, {{b[1]}, 0.0}}, settings);
  EXPECT_EQ(eight.quantized_parameters(), 64 * 80);  // the 100-element bias stays fp32
  const auto grads = random_like(a, 1);
  for (std::size_t i = 0; i < a.size(); ++i) {
    a[i].mutable_grad() = grads[i].clone();
    b[i].mutable_grad() = grads[i].clone();
  }
  fp32.step();
  eight.step();
  for (std::size_t i = 0; i < a.size(); ++i) ASSERT_TRUE(at::allclose(a[i], b[i], 1e-6, 1e-7)) << "tensor " << i;
}

TEST(AdamW8bit, StateIsAQuarterOfFp32AdamW) {
  GptConfig config = gpt_preset("tiny");
  config.vocab_size = 256;
  Gpt model(config);
  const auto fp32 = make_adamw(adamw_groups(*model, {}), {}, false);
  const auto eight = make_adamw(adamw_groups(*model, {}), {}, true);
  const auto params = config.parameter_count();
  // About 2 bytes per parameter plus absmax, against 8.
  EXPECT_LT(static_cast<double>(eight->state_bytes()) / static_cast<double>(params), 2.2);
  EXPECT_NEAR(static_cast<double>(fp32->state_bytes()) / static_cast<double>(params), 8.0, 0.01);
}

// The kernel steps all 8-bit tensors of a group in one launch (several, past
// kAdamw8bitTensorsPerLaunch tensors): each tensor must come out as if stepped alone, bit for bit
// (the arithmetic of an element does not depend on its neighbours). Ragged lengths, and more
// tensors than one launch takes.
TEST(AdamW8bit, CudaOneLaunchForManyTensorsEqualsOneTensorAtATime) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device (runs in bench/run.sh test)";
  torch::manual_seed(6);
  AdamWSettings settings{3e-3, 0.9, 0.95, 1e-8, 0.1, false};
  std::vector<at::Tensor> together, alone;
  for (int i = 0; i < 70; ++i) {
    const std::int64_t n = 4096 + 257 * i;
    const auto start = at::randn({n});
    together.push_back(start.cuda());
    alone.push_back(start.cuda());
  }
  AdamW8bit batched({{together, 0.1}}, settings);
  std::vector<std::unique_ptr<AdamW8bit>> singles;
  for (auto& p : alone)
    singles.push_back(std::make_unique<AdamW8bit>(std::vector<Optimizer::Group>{{{p}, 0.1}}, settings));
  for (int step = 0; step < 3; ++step) {
    for (std::size_t i = 0; i < together.size(); ++i) {
      const auto grad = at::randn({together[i].numel()}).cuda();
      together[i].mutable_grad() = grad.clone();
      alone[i].mutable_grad() = grad.clone();
    }
    batched.step();
    for (auto& single : singles) single->step();
  }
  for (std::size_t i = 0; i < together.size(); ++i) EXPECT_TRUE(at::equal(together[i], alone[i])) << "tensor " << i;
}

// The kernel reads aligned tensors 16 bytes at a time (8 values per lane) and others one value at a
// time (strided): the same arithmetic per element, so the same bits. A parameter one float past an
// aligned start takes the strided layout; a ragged length puts a partial group in the last block.
TEST(AdamW8bit, CudaPackedAndStridedLayoutsGiveTheSameBits) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device (runs in bench/run.sh test)";
  torch::manual_seed(8);
  constexpr std::int64_t n = 100'003;
  const auto start = at::randn({n});
  auto aligned = start.cuda();
  auto buffer = at::zeros({n + 1}, aligned.options());
  auto shifted = buffer.slice(0, 1, n + 1);  // 4 bytes past the allocation's start
  shifted.copy_(aligned);
  ASSERT_NE(reinterpret_cast<std::uintptr_t>(shifted.data_ptr()) % 16, 0u);
  AdamWSettings settings{3e-3, 0.9, 0.95, 1e-8, 0.1, false};
  AdamW8bit packed({{{aligned}, 0.1}}, settings), strided({{{shifted}, 0.1}}, settings);
  for (int step = 0; step < 3; ++step) {
    const auto grad = at::randn({n}).cuda() * (step + 1);
    aligned.mutable_grad() = grad.clone();
    shifted.mutable_grad() = grad.clone();
    packed.step();
    strided.step();
  }
  EXPECT_TRUE(at::equal(aligned, shifted));
  EXPECT_FALSE(at::equal(aligned, start.cuda())) << "the steps moved the parameters";
}

TEST(AdamW8bit, CudaKernelMatchesTheReference) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device (runs in bench/run.sh test)";
  torch::manual_seed(5);
  // A ragged length: the last block has 3 elements.
  const auto start = at::randn({1'000'003});
  auto kernel_param = start.cuda(), reference_param = start.cuda();
  AdamWSettings settings{3e-3, 0.9, 0.95, 1e-8, 0.1, false};
  AdamW8bit kernel({{{kernel_param}, 0.1}}, settings), reference({{{reference_param}, 0.1}}, settings);
  reference.use_reference_implementation(true);
  for (int step = 0; step < 5; ++step) {
    const auto grad = at::randn({1'000'003}).cuda() * (step + 1);
    kernel_param.mutable_grad() = grad.clone();
    reference_param.mutable_grad() = grad.clone();
    kernel.step();
    reference.step();
  }
  // The fused kernel rounds differently from the ATen ops (FMA, evaluation order). Where that puts
  // a moment on the other side of a code midpoint, the element's update differs by one code gap
  // from then on (first GPU run: up to 2.7e-4 relative). So: almost every element agrees to
  // float rounding, and over the 5 steps no element is off by one step's whole update (lr); a
  // wrong kernel (sign, map, bias correction) moves most elements by about lr per step, and a
  // wrong ragged last block moves its elements by that much or more.
  const auto relative = (kernel_param - reference_param).abs() / (reference_param.abs() + 1e-3);
  const double off = (relative > 1e-5).to(at::kDouble).mean().item<double>();
  EXPECT_LT(off, 1e-3) << "fraction of elements beyond float rounding";
  const double largest = (kernel_param - reference_param).abs().max().item<double>();
  EXPECT_LT(largest, settings.lr) << "largest parameter difference";
  // Codes: the same almost everywhere; where float rounding puts a value on the other side of a
  // midpoint, one code apart.
  torch::serialize::OutputArchive a, b;
  kernel.save(a);
  reference.save(b);
  std::ostringstream sa, sb;
  a.save_to(sa);
  b.save_to(sb);
  std::istringstream ia(sa.str()), ib(sb.str());
  torch::serialize::InputArchive ra, rb;
  ra.load_from(ia);
  rb.load_from(ib);
  for (const char* key : {"codes_avg.0.0", "codes_avg_sq.0.0"}) {
    at::Tensor ca, cb;
    ra.read(key, ca, true);
    rb.read(key, cb, true);
    const auto delta = (ca.to(at::kInt) - cb.to(at::kInt)).abs();
    EXPECT_LE(delta.max().item<int>(), 1) << key;
    EXPECT_LT(delta.gt(0).to(at::kDouble).mean().item<double>(), 1e-3) << key;
  }
}

TEST_F(TrainerTest, EightBitTrainingStaysWithinTwoPercentOfFp32Over200Steps) {
  // The tiny preset (128 wide) so that the matrices are above the 4096-element threshold.
  std::vector<double> means;
  for (bool eight_bit : {false, true}) {
    auto o = options(eight_bit ? "8bit" : "fp32");
    o.model.n_layer = 0, o.model.n_head = 0, o.model.n_embd = 0;  // the preset's 4 x 128
    o.optimizer.use_8bit_optimizer = eight_bit;
    o.data.window_size = 32;
    o.run.steps = 200;
    o.optimizer.warmup_steps = 10;
    o.optimizer.lr = 3e-3, o.optimizer.min_lr = 3e-4;
    o.run.log_file = dir_ / (eight_bit ? "8bit.jsonl" : "fp32.jsonl");
    train(o);
    means.push_back(mean_loss(o.run.log_file, 181, 200));
  }
  expect_mean_loss_close("8-bit AdamW, mean loss of steps 181-200", means[0], means[1], 2.6, 0.02);
}

TEST_F(TrainerTest, EightBitResumeIsBitIdentical) {
  auto straight = options("straight8");
  straight.model.n_embd = 64;  // c_attn 64x192, c_fc 64x256: 8-bit state
  straight.optimizer.use_8bit_optimizer = true;
  straight.run.steps = 6;
  straight.run.checkpoint_interval = 3;
  const auto end = train(straight).last_checkpoint;
  auto resumed = straight;
  resumed.run.out_dir = dir_ / "resumed8";
  resumed.run.resume = dir_ / "straight8/ckpt-00000003.pt";
  const auto resumed_end = train(resumed).last_checkpoint;
  const auto a = parameters_of(end, straight), b = parameters_of(resumed_end, resumed);
  for (std::size_t i = 0; i < a.size(); ++i) ASSERT_TRUE(torch::equal(a[i], b[i])) << "tensor " << i;
}

}  // namespace
}  // namespace aios
