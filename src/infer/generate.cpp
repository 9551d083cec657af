#include "infer/generate.h"

#include <ATen/Context.h>
#include <ATen/ops/argmax.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/multinomial.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/sort.h>
#include <ATen/ops/topk.h>
#include <torch/types.h>

#include "base/error.h"
#include "infer/inference_scope.h"

namespace aios {
namespace {

// How often the host looks whether every sample has ended: each look waits for the GPU, so it
// is not done per token.
constexpr std::int64_t kStopCheckTokens = 16;

// The next token of each row from its logits [B, vocab] (float), on their device.
at::Tensor choose(at::Tensor logits, const SamplingOptions& o, at::Generator& generator) {
  if (o.temperature <= 0 || o.top_k == 1) return logits.argmax(-1);
  logits = logits / o.temperature;
  const auto vocab = logits.size(-1);
  at::Tensor candidates;  // [B, k] vocabulary ids of the kept logits; undefined: all
  if (o.top_k > 0 && o.top_k < vocab) std::tie(logits, candidates) = logits.topk(o.top_k, -1);  // sorted
  auto probs = at::softmax(logits, -1);
  if (o.top_p < 1.0) {
    at::Tensor order;
    if (!candidates.defined()) std::tie(probs, order) = probs.sort(-1, /*descending=*/true);
    // Keep a token while the mass before it is below top_p: the most likely one always stays.
    probs = probs.masked_fill(probs.cumsum(-1) - probs >= o.top_p, 0.0);
    if (!candidates.defined()) candidates = order;
  }
  const auto drawn = at::multinomial(probs, 1, /*replacement=*/false, generator);
  return (candidates.defined() ? candidates.gather(-1, drawn) : drawn).squeeze(-1);
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
  const auto started = std::chrono::steady_clock::now();
  const auto since_start = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  };
  const InferenceScope inference(model, o.precision);
  const auto device = model->wte->weight.device();
  // A generator of its own on the model's device: the global one (training's dropout) is untouched.
  at::Generator generator = at::globalContext().defaultGenerator(device).clone();
  generator.set_current_seed(o.seed);

  std::vector<std::int64_t> prompt_ids(prompt.begin(), prompt.end());
  auto tokens = torch::tensor(prompt_ids, torch::kLong).view({1, prompt_length}).repeat({samples, 1}).to(device);
  Generation result;
  std::vector<at::Tensor> keys, values;
  const auto last_hidden = [&](const at::Tensor& input, std::int64_t start) {
    result.forward_positions += input.size(1);
    if (!o.use_cache) return model->hidden_states(input).select(1, -1);
    auto out = model->hidden_states_chunk(input, start, keys, values);
    keys.resize(out.keys.size());
    values.resize(out.values.size());
    for (std::size_t layer = 0; layer < out.keys.size(); ++layer) {
      keys[layer] = keys[layer].defined() ? at::cat({keys[layer], out.keys[layer]}, 2) : out.keys[layer];
      values[layer] = values[layer].defined() ? at::cat({values[layer], out.values[layer]}, 2) : out.values[layer];
    }
    return out.output.select(1, -1);
  };
  // New tokens stay on the device: the host does not wait for the GPU token by token.
  const auto drawn = at::empty({samples, o.max_new_tokens}, tokens.options());
  auto ended = at::zeros({samples}, tokens.options().dtype(at::kBool));
  auto hidden = last_hidden(tokens, 0);
  std::int64_t made = 0;
  for (std::int64_t step = 0; step < o.max_new_tokens; ++step) {
    const auto next = choose(at::linear(hidden, model->wte->weight).to(at::kFloat), o, generator);
    drawn.select(1, step).copy_(next);
    made = step + 1;
    if (made == 1) {
      (void)next.cpu();  // sync: the first token's latency, apart from the rate of the rest
      result.first_token_seconds = since_start();
    }
    if (o.stop_id) {
      ended |= next == static_cast<std::int64_t>(*o.stop_id);
      if (made % kStopCheckTokens == 0 && ended.all().item<bool>()) break;  // sync, every 16 tokens
    }
    if (made == o.max_new_tokens) break;
    const auto column = next.view({samples, 1});
    if (o.use_cache) {
      hidden = last_hidden(column, prompt_length + step);
    } else {
      tokens = at::cat({tokens, column}, 1);
      hidden = last_hidden(tokens, 0);
    }
  }
  const auto host = drawn.narrow(1, 0, made).cpu();  // sync
  result.seconds = since_start();
  const auto* ids = host.data_ptr<std::int64_t>();
  result.tokens.resize(static_cast<std::size_t>(samples));
  for (std::int64_t row = 0; row < samples; ++row) {
    for (std::int64_t i = 0; i < made; ++i) {
      const auto id = static_cast<std::uint32_t>(ids[row * made + i]);
      result.tokens[row].push_back(id);
      if (o.stop_id && id == *o.stop_id) break;  // a sample ends at its first end of text
    }
  }
  return result;
}

}  // namespace aios
