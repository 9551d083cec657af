#include "memory/chunked_training.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <algorithm>

#include "base/error.h"
#include "base/rng_state.h"

namespace aios {
namespace {

struct RngStates {
  at::Tensor cpu, device;
};

RngStates save_rng(const at::Device& device) {
  return {get_rng_state(at::Device(at::kCPU)), device.is_cuda() ? get_rng_state(device) : at::Tensor()};
}

void restore_rng(const RngStates& states, const at::Device& device) {
  set_rng_state(at::Device(at::kCPU), states.cpu);
  if (device.is_cuda()) set_rng_state(device, states.device);
}

torch::Tensor truncated(Gpt& model, const torch::Tensor& tokens, const torch::Tensor& targets, const ChunkedTraining& o,
                        const MixedPrecision& mp, const std::function<torch::Tensor(const torch::Tensor&)>& scaled,
                        const std::function<void()>& before_last_backward) {
  const std::int64_t window = tokens.size(1);
  const std::int64_t memory = o.memory > 0 ? o.memory : window;
  std::vector<torch::Tensor> past_keys, past_values;
  torch::Tensor total;
  for (std::int64_t start = 0; start < window; start += o.chunk) {
    const std::int64_t length = std::min(o.chunk, window - start);
    ChunkOutput out;
    torch::Tensor loss;
    {
      AutocastRegion autocast(tokens.device().type(), mp.enabled, mp.dtype);
      out = model->hidden_states_chunk(tokens.narrow(1, start, length), start, past_keys, past_values);
      loss = model->loss_from_hidden(out.output, targets.narrow(1, start, length));
    }
    if (start + length == window) before_last_backward();
    scaled(loss).backward();
    total = total.defined() ? total + loss.detach() : loss.detach();
    // Keep the last `memory` tokens' keys/values, detached: no gradient crosses the boundary.
    const bool first = past_keys.empty();
    if (first) past_keys.resize(out.keys.size()), past_values.resize(out.values.size());
    for (std::size_t l = 0; l < out.keys.size(); ++l) {
      auto k = first ? out.keys[l].detach() : at::cat({past_keys[l], out.keys[l].detach()}, 2);
      auto v = first ? out.values[l].detach() : at::cat({past_values[l], out.values[l].detach()}, 2);
      const std::int64_t keep = std::min(memory, k.size(2));
      past_keys[l] = k.narrow(2, k.size(2) - keep, keep);
      past_values[l] = v.narrow(2, v.size(2) - keep, keep);
    }
  }
  return total;
}

torch::Tensor exact(Gpt& model, const torch::Tensor& tokens, const torch::Tensor& targets, const ChunkedTraining& o,
                    const MixedPrecision& mp, const std::function<torch::Tensor(const torch::Tensor&)>& scaled,
                    const std::function<void()>& before_last_backward) {
  const std::int64_t window = tokens.size(1);
  const at::Device device = tokens.device();
  std::vector<std::int64_t> starts;
  for (std::int64_t start = 0; start < window; start += o.chunk) starts.push_back(start);
  auto length_of = [&](std::size_t j) { return std::min(o.chunk, window - starts[j]); };

  // Pass 1, no gradients: every layer's keys/values of all chunks but the last, chunk by chunk,
  // into [B, heads, start of the last chunk, head_dim] buffers; earlier chunks are read as views
  // of them. The last chunk's keys/values feed no later chunk, so it runs only in pass 2: one
  // chunk's forward less (a window of one chunk costs what the whole window does).
  const std::int64_t stored = starts.back();
  std::vector<torch::Tensor> keys, values;
  std::vector<RngStates> rng;
  {
    torch::NoGradGuard no_grad;
    for (std::size_t j = 0; j + 1 < starts.size(); ++j) {
      rng.push_back(save_rng(device));
      std::vector<torch::Tensor> past_keys, past_values;
      for (std::size_t l = 0; l < keys.size(); ++l) {
        past_keys.push_back(keys[l].narrow(2, 0, starts[j]));
        past_values.push_back(values[l].narrow(2, 0, starts[j]));
      }
      AutocastRegion autocast(device.type(), mp.enabled, mp.dtype);
      const auto out =
          model->hidden_states_chunk(tokens.narrow(1, starts[j], length_of(j)), starts[j], past_keys, past_values);
      for (std::size_t l = 0; l < out.keys.size(); ++l) {
        if (keys.size() <= l) {
          auto shape = out.keys[l].sizes().vec();
          shape[2] = stored;
          keys.push_back(at::empty(shape, out.keys[l].options()));
          values.push_back(at::empty(shape, out.values[l].options()));
        }
        keys[l].narrow(2, starts[j], length_of(j)).copy_(out.keys[l]);
        values[l].narrow(2, starts[j], length_of(j)).copy_(out.values[l]);
      }
    }
  }

  // Pass 2, last chunk first: recompute with gradients, backward the chunk's loss together with
  // the gradients later chunks sent to its keys/values, and collect what it sends to earlier ones.
  std::vector<torch::Tensor> key_grads, value_grads;
  for (std::size_t l = 0; l < keys.size(); ++l) {
    key_grads.push_back(at::zeros_like(keys[l]));
    value_grads.push_back(at::zeros_like(values[l]));
  }
  torch::Tensor total;
  RngStates after_forward;
  for (std::size_t j = starts.size(); j-- > 0;) {
    const std::int64_t start = starts[j], length = length_of(j);
    const bool last = j + 1 == starts.size();
    std::vector<torch::Tensor> past_keys, past_values;
    if (start > 0) {
      for (std::size_t l = 0; l < keys.size(); ++l) {
        past_keys.push_back(keys[l].narrow(2, 0, start).detach().requires_grad_(true));
        past_values.push_back(values[l].narrow(2, 0, start).detach().requires_grad_(true));
      }
    }
    if (!last) restore_rng(rng[j], device);
    ChunkOutput out;
    torch::Tensor loss;
    {
      AutocastRegion autocast(device.type(), mp.enabled, mp.dtype);
      out = model->hidden_states_chunk(tokens.narrow(1, start, length), start, past_keys, past_values);
      loss = model->loss_from_hidden(out.output, targets.narrow(1, start, length));
    }
    // The generator as a whole-window forward leaves it: after every chunk's first forward.
    if (last) after_forward = save_rng(device);
    std::vector<torch::Tensor> roots = {scaled(loss)}, seeds = {torch::Tensor()};
    if (!last) {  // later chunks read this chunk's keys/values
      for (std::size_t l = 0; l < keys.size(); ++l) {
        roots.push_back(out.keys[l]);
        seeds.push_back(key_grads[l].narrow(2, start, length));
        roots.push_back(out.values[l]);
        seeds.push_back(value_grads[l].narrow(2, start, length));
      }
    }
    seeds[0] = at::ones_like(roots[0]);
    if (j == 0) before_last_backward();
    torch::autograd::backward(roots, seeds);
    for (std::size_t l = 0; l < past_keys.size(); ++l) {
      if (past_keys[l].grad().defined()) key_grads[l].narrow(2, 0, start).add_(past_keys[l].grad());
      if (past_values[l].grad().defined()) value_grads[l].narrow(2, 0, start).add_(past_values[l].grad());
    }
    total = total.defined() ? total + loss.detach() : loss.detach();
  }
  restore_rng(after_forward, device);
  return total;
}

}  // namespace

torch::Tensor chunked_forward_backward(Gpt& model, const torch::Tensor& tokens, const torch::Tensor& targets,
                                       const ChunkedTraining& options, const MixedPrecision& mp,
                                       const std::function<torch::Tensor(const torch::Tensor&)>& scaled,
                                       const std::function<void()>& before_last_backward) {
  if (options.chunk < 1) throw Error("--chunk-size", "must be positive with --chunked-training", "a token count");
  if (options.mode == ChunkMode::kExact)
    return exact(model, tokens, targets, options, mp, scaled, before_last_backward);
  return truncated(model, tokens, targets, options, mp, scaled, before_last_backward);
}

}  // namespace aios
