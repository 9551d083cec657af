#include "infer/generate.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/ops/argmax.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/multinomial.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/sort.h>
#include <ATen/ops/topk.h>
#include <torch/types.h>

#include "base/error.h"

namespace aios {
namespace {

// The next token of each row from its logits [B, vocab] (float, CPU).
at::Tensor choose(at::Tensor logits, const SamplingOptions& o, at::Generator& generator) {
  if (o.temperature <= 0) return logits.argmax(-1);
  logits = logits / o.temperature;
  const auto vocab = logits.size(-1);
  if (o.top_k > 0 && o.top_k < vocab) {
    const auto kth = std::get<0>(logits.topk(o.top_k, -1)).select(-1, o.top_k - 1).unsqueeze(-1);
    logits = logits.masked_fill(logits < kth, -std::numeric_limits<float>::infinity());
  }
  auto probs = at::softmax(logits, -1);
  if (o.top_p < 1.0) {
    auto [sorted, order] = probs.sort(-1, /*descending=*/true);
    // Keep a token while the mass before it is below top_p: the most likely one always stays.
    const auto before = sorted.cumsum(-1) - sorted;
    sorted = sorted.masked_fill(before >= o.top_p, 0.0);
    probs = at::zeros_like(probs).scatter(-1, order, sorted);
  }
  return at::multinomial(probs, 1, /*replacement=*/false, generator).squeeze(-1);
}

}  // namespace

Generation generate(Gpt& model, const std::vector<std::uint32_t>& prompt, std::int64_t samples,
                    const SamplingOptions& o) {
  const GptConfig& config = model->config();
  if (prompt.empty()) throw Error("--prompt", "is empty and the tokenizer has no end-of-text id to start from");
  const auto prompt_length = static_cast<std::int64_t>(prompt.size());
  if (!config.rope() && prompt_length + o.max_new_tokens > config.max_positions) {
    throw Error("--max-new-tokens",
                std::to_string(o.max_new_tokens) + " after a prompt of " + std::to_string(prompt_length) +
                    " tokens exceeds the model's " + std::to_string(config.max_positions) + " positions",
                "prompt + new tokens <= " + std::to_string(config.max_positions));
  }
  torch::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  const auto device = model->wte->weight.device();
  AutocastRegion autocast(device.type(), o.precision.enabled, o.precision.dtype);
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(o.seed);

  std::vector<std::int64_t> prompt_ids(prompt.begin(), prompt.end());
  auto tokens = torch::tensor(prompt_ids, torch::kLong).view({1, prompt_length}).repeat({samples, 1}).to(device);
  Generation result;
  result.tokens.resize(static_cast<std::size_t>(samples));
  std::vector<bool> stopped(static_cast<std::size_t>(samples), false);
  std::vector<at::Tensor> keys, values;
  const auto last_hidden = [&](const at::Tensor& input, std::int64_t start) {
    result.forward_positions += input.size(1);
    if (!o.use_cache) return model->hidden_states(input).select(1, -1);
    auto out = model->hidden_states_chunk(input, start, keys, values);
    for (std::size_t layer = 0; layer < out.keys.size(); ++layer) {
      keys.resize(out.keys.size());
      values.resize(out.values.size());
      keys[layer] = keys[layer].defined() ? at::cat({keys[layer], out.keys[layer]}, 2) : out.keys[layer];
      values[layer] = values[layer].defined() ? at::cat({values[layer], out.values[layer]}, 2) : out.values[layer];
    }
    return out.output.select(1, -1);
  };
  auto hidden = last_hidden(tokens, 0);
  for (std::int64_t step = 0; step < o.max_new_tokens; ++step) {
    const auto logits = at::linear(hidden, model->wte->weight).to(at::kFloat);
    // Greedy picks on the device; sampling draws on the CPU (its generator, any device alike).
    const auto next = (o.temperature <= 0 ? logits.argmax(-1) : choose(logits.cpu(), o, generator)).cpu();  // sync
    bool all_stopped = true;
    for (std::int64_t row = 0; row < samples; ++row) {
      if (stopped[row]) continue;
      const auto id = static_cast<std::uint32_t>(next[row].item<std::int64_t>());
      result.tokens[row].push_back(id);
      stopped[row] = o.stop_id && id == *o.stop_id;
      all_stopped = all_stopped && stopped[row];
    }
    if (all_stopped || step + 1 == o.max_new_tokens) break;
    const auto column = next.view({samples, 1}).to(device);
    if (o.use_cache) {
      hidden = last_hidden(column, prompt_length + step);
    } else {
      tokens = at::cat({tokens, column}, 1);
      hidden = last_hidden(tokens, 0);
    }
  }
  if (was_training) model->train();
  return result;
}

}  // namespace aios
