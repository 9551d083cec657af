#include "model/gpt.h"

#include <ATen/ATen.h>
#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/loss.h>
#include <torch/nn/init.h>

#include <cmath>

#include "base/error.h"
#include "kernels/attention_heads.h"
#include "kernels/fused_classifier.h"
#include "kernels/layer_norm.h"
#include "kernels/linear.h"
#include "kernels/linear_gelu.h"
#include "model/causal_attention.h"

namespace aios {

namespace F = torch::nn::functional;

namespace {

// Through kernels/linear.h, not the C++ frontend's Linear::forward: for inputs of more than two
// dimensions the frontend runs matmul and then adds the bias in a separate kernel, where at::linear
// (which kernels/linear.h calls) flattens them into one addmm whose bias add is fused into the
// GEMM's epilogue, as PyTorch's Python nn.Linear does; and its backward writes float32 gradients.
torch::Tensor linear(const torch::nn::Linear& layer, const torch::Tensor& x) {
  return aios::linear(x, layer->weight, layer->bias);
}

// The module's parameters through kernels/layer_norm.h: on CUDA the fused kernels (under autocast
// the output already in the type the next matmul reads), elsewhere ATen's layer_norm, which is what
// LayerNormImpl::forward calls.
torch::Tensor norm(const torch::nn::LayerNorm& layer, const torch::Tensor& x) {
  return layer_norm(x, layer->weight, layer->bias, layer->options.eps());
}

// The same for a block's residual stream (kernels/layer_norm.h): {x, norm(x)}, and
// {x + branch, norm(x + branch)}, with the adds and the stream's gradient sums inside LayerNorm's
// kernels on CUDA.
NormedStream norm_of_stream(const torch::nn::LayerNorm& layer, const torch::Tensor& x) {
  return layer_norm_of_stream(x, layer->weight, layer->bias, layer->options.eps());
}
NormedStream add_and_norm(const torch::nn::LayerNorm& layer, const torch::Tensor& x, const torch::Tensor& branch) {
  return add_and_layer_norm(x, branch, layer->weight, layer->bias, layer->options.eps());
}

}  // namespace

CausalSelfAttentionImpl::CausalSelfAttentionImpl(const GptConfig& config, std::shared_ptr<RotaryTable> rotary)
    : n_head_(config.n_head), dropout_(config.dropout) {
  if (config.rope()) rotary_ = rotary ? std::move(rotary) : std::make_shared<RotaryTable>(config.rope_theta);
  c_attn = register_module("c_attn", torch::nn::Linear(config.n_embd, 3 * config.n_embd));
  c_proj = register_module("c_proj", torch::nn::Linear(config.n_embd, config.n_embd));
}

torch::Tensor CausalSelfAttentionImpl::forward(const torch::Tensor& x) {
  if (rotary_) return forward_chunk(x, 0, {}, {}).output;
  const auto batch = x.size(0), time = x.size(1), width = x.size(2);
  const auto qkv = split_heads(linear(c_attn, x), n_head_);  // three [B, nh, T, hd] views
  const auto y = causal_attention(qkv[0], qkv[1], qkv[2], is_training() ? dropout_ : 0.0);
  return linear(c_proj, y.transpose(1, 2).contiguous().view({batch, time, width}));
}

ChunkOutput CausalSelfAttentionImpl::forward_chunk(const torch::Tensor& x, std::int64_t start,
                                                   const torch::Tensor& past_keys, const torch::Tensor& past_values) {
  const auto batch = x.size(0), time = x.size(1), width = x.size(2);
  const auto qkv = linear(c_attn, x).view({batch, time, 3, n_head_, width / n_head_}).permute({2, 0, 3, 1, 4});
  // Queries and keys apart from values, so that rotary positions turn both at once; split's
  // backward, like unbind's, writes the three gradients into one tensor.
  const auto parts = qkv.split_with_sizes({2, 1}, 0);
  const auto qk = (rotary_ ? rotary_->rotate(parts[0], start) : parts[0]).unbind(0);
  const auto& q = qk[0];
  const auto& k = qk[1];
  const auto v = parts[1].squeeze(0);
  const double dropout = is_training() ? dropout_ : 0.0;
  torch::Tensor y;
  if (!past_keys.defined() || past_keys.size(2) == 0) {
    y = causal_attention(q, k, v, dropout);
  } else {
    const auto keys = at::cat({past_keys, k.to(past_keys.scalar_type())}, 2);
    const auto values = at::cat({past_values, v.to(past_values.scalar_type())}, 2);
    y = causal_attention_after_past(q, keys.to(q.scalar_type()), values.to(q.scalar_type()), dropout);
  }
  return {linear(c_proj, y.transpose(1, 2).contiguous().view({batch, time, width})), {k}, {v}};
}

torch::Tensor CausalSelfAttentionImpl::causal_attention(const torch::Tensor& q, const torch::Tensor& k,
                                                        const torch::Tensor& v, double dropout) {
  if (attention_runner_ && dropout == 0.0) return attention_runner_(q, k, v);
  return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, dropout, /*is_causal=*/true);
}

MlpImpl::MlpImpl(const GptConfig& config) {
  c_fc = register_module("c_fc", torch::nn::Linear(config.n_embd, 4 * config.n_embd));
  c_proj = register_module("c_proj", torch::nn::Linear(4 * config.n_embd, config.n_embd));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) { return linear(c_proj, hidden(x)); }

torch::Tensor MlpImpl::hidden(const torch::Tensor& x) {
  // GPT-2's "gelu_new" is the tanh approximation, which linear_gelu computes.
  return linear_gelu(x, c_fc->weight, c_fc->bias);
}

BlockImpl::BlockImpl(const GptConfig& config, std::shared_ptr<RotaryTable> rotary) {
  const auto norm = torch::nn::LayerNormOptions({config.n_embd}).eps(config.layer_norm_eps);
  ln_1 = register_module("ln_1", torch::nn::LayerNorm(norm));
  attn = register_module("attn", CausalSelfAttention(config, std::move(rotary)));
  ln_2 = register_module("ln_2", torch::nn::LayerNorm(norm));
  mlp = register_module("mlp", Mlp(config));
  residual_dropout = register_module("residual_dropout", torch::nn::Dropout(config.dropout));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x) {
  const auto [stream, normed] = norm_of_stream(ln_1, x);
  const auto [y, y_normed] = add_and_norm(ln_2, stream, residual_dropout(attn(normed)));
  return y + residual_dropout(mlp(y_normed));
}

std::pair<torch::Tensor, torch::Tensor> BlockImpl::forward_to_output_projection(const torch::Tensor& x) {
  const auto [stream, normed] = norm_of_stream(ln_1, x);
  const auto [y, y_normed] = add_and_norm(ln_2, stream, residual_dropout(attn(normed)));
  return {y, mlp->hidden(y_normed)};
}

ChunkOutput BlockImpl::forward_chunk(const torch::Tensor& x, std::int64_t start, const torch::Tensor& past_keys,
                                     const torch::Tensor& past_values) {
  const auto [stream, normed] = norm_of_stream(ln_1, x);
  auto attention = attn->forward_chunk(normed, start, past_keys, past_values);
  const auto [y, y_normed] = add_and_norm(ln_2, stream, residual_dropout(attention.output));
  attention.output = y + residual_dropout(mlp(y_normed));
  return attention;
}

GptImpl::GptImpl(const GptConfig& config) : config_(config) {
  check_config(config);
  wte = register_module("wte", torch::nn::Embedding(config.vocab_size, config.n_embd));
  if (!config.rope()) wpe = register_module("wpe", torch::nn::Embedding(config.max_positions, config.n_embd));
  embedding_dropout = register_module("embedding_dropout", torch::nn::Dropout(config.dropout));
  h = register_module("h", torch::nn::ModuleList());
  // One rotary table for all layers: they share the positions of every forward.
  const auto rotary = config.rope() ? std::make_shared<RotaryTable>(config.rope_theta) : nullptr;
  for (std::int64_t i = 0; i < config.n_layer; ++i) h->push_back(Block(config, rotary));
  ln_f = register_module("ln_f",
                         torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.n_embd}).eps(config.layer_norm_eps)));
  initialize_weights();
}

void GptImpl::initialize_weights() {
  torch::NoGradGuard no_grad;
  const double residual_std = 0.02 / std::sqrt(2.0 * static_cast<double>(config_.n_layer));
  for (auto& item : named_parameters()) {
    const std::string& name = item.key();
    auto& p = item.value();
    if (name.ends_with(".bias")) {
      p.zero_();
    } else if (name.find("ln_") != std::string::npos) {
      p.fill_(1.0);
    } else if (name.ends_with("c_proj.weight")) {
      p.normal_(0.0, residual_std);
    } else {
      p.normal_(0.0, 0.02);
    }
  }
}

torch::Tensor GptImpl::embed(const torch::Tensor& tokens, std::int64_t start) {
  const auto time = tokens.size(1);
  if (config_.rope()) return embedding_dropout(wte(tokens));
  if (start + time > config_.max_positions) {
    throw Error("--window-size",
                "window of " + std::to_string(start + time) + " tokens exceeds the model's " +
                    std::to_string(config_.max_positions) + " positions",
                "--window-size <= --seq-len, or --pos rope");
  }
  auto positions = torch::arange(start, start + time, tokens.options().dtype(torch::kLong));
  return embedding_dropout(wte(tokens) + wpe(positions));
}

ChunkOutput GptImpl::hidden_states_chunk(const torch::Tensor& tokens, std::int64_t start,
                                         const std::vector<torch::Tensor>& past_keys,
                                         const std::vector<torch::Tensor>& past_values) {
  auto x = embed(tokens, start);
  ChunkOutput result;
  for (std::size_t i = 0; i < h->size(); ++i) {
    auto& block = *h[i]->as<BlockImpl>();
    const auto pk = past_keys.empty() ? torch::Tensor() : past_keys[i];
    const auto pv = past_values.empty() ? torch::Tensor() : past_values[i];
    auto out = chunk_block_runner_ ? chunk_block_runner_(block, static_cast<std::int64_t>(i), x, start, pk, pv)
                                   : block.forward_chunk(x, start, pk, pv);
    x = out.output;
    result.keys.push_back(out.keys[0]);
    result.values.push_back(out.values[0]);
  }
  result.output = norm(ln_f, x);
  return result;
}

torch::Tensor GptImpl::hidden_states(const torch::Tensor& tokens) {
  auto x = embed(tokens, 0);
  for (std::size_t i = 0; i < h->size(); ++i) {
    auto& block = *h[i]->as<BlockImpl>();
    x = block_runner_ ? block_runner_(block, static_cast<std::int64_t>(i), x) : block.forward(x);
  }
  return norm(ln_f, x);
}

torch::Tensor GptImpl::forward(const torch::Tensor& tokens) { return at::linear(hidden_states(tokens), wte->weight); }

torch::Tensor GptImpl::loss_sum(const torch::Tensor& tokens, const torch::Tensor& targets) {
  return loss_from_hidden(hidden_states(tokens), targets);
}

torch::Tensor GptImpl::loss_from_hidden(const torch::Tensor& hidden, const torch::Tensor& targets) {
  if (loss_head_) return loss_head_(hidden, wte->weight, targets);
  if (hidden.is_cuda()) {
    // The fused classifier with every token in one chunk: the same logits, kept in the matmul
    // type, and the loss and its gradient in one kernel instead of a float32 copy, log-softmax and
    // its backward. The ATen path below stays the reference (and the CPU path).
    const auto flat = hidden.reshape({-1, hidden.size(-1)});
    return fused_classifier_loss_sum(flat, wte->weight, targets.reshape({-1}), flat.size(0));
  }
  auto logits = at::linear(hidden, wte->weight);
  // Cross-entropy in fp32 whatever the activations' type: a bf16 log-softmax over 50k classes
  // loses the small probabilities that carry the gradient.
  const auto flat = logits.view({-1, logits.size(-1)});
  return F::cross_entropy(flat.scalar_type() == torch::kDouble ? flat : flat.to(torch::kFloat), targets.reshape({-1}),
                          F::CrossEntropyFuncOptions().reduction(torch::kSum));
}

}  // namespace aios
