// Decoder-only GPT-2: learned token and position embeddings, pre-LayerNorm blocks (causal
// self-attention through scaled_dot_product_attention, tanh-GELU MLP), final LayerNorm and an
// LM head tied to the token embedding. Parameter names follow Hugging Face's GPT-2 so that
// checkpoints map one to one (transformer.h.N.attn.c_attn.weight ...), with Linear weights in
// torch's [out, in] layout.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "model/gpt_config.h"
#include "model/rotary.h"

namespace aios {

// A chunk's output and the keys/values it computed (for the chunks after it).
struct ChunkOutput {
  torch::Tensor output;
  std::vector<torch::Tensor> keys, values;  // per layer [B, heads, T, head_dim] (one entry for a block)
};

class CausalSelfAttentionImpl : public torch::nn::Module {
 public:
  // rotary: the model's shared table under --pos rope (null: one of its own).
  explicit CausalSelfAttentionImpl(const GptConfig& config, std::shared_ptr<RotaryTable> rotary = nullptr);
  torch::Tensor forward(const torch::Tensor& x);  // x: [B, T, C] -> [B, T, C]
  // x holds tokens start .. start + T - 1; past_keys/values [B, heads, start, head_dim] (undefined:
  // none) are the earlier tokens'. Each token attends to every earlier token and itself (a
  // causal mask aligned to the lower right). Returns the output and this chunk's keys/values.
  ChunkOutput forward_chunk(const torch::Tensor& x, std::int64_t start, const torch::Tensor& past_keys,
                            const torch::Tensor& past_values);

  // How causal attention of q, k, v [B, heads, T, head_dim] without earlier tokens and without
  // dropout runs; null: SDPA. A memory technique installs one for the span of a call
  // (memory/kept_attention.h), so the model knows nothing of it.
  using AttentionRunner =
      std::function<torch::Tensor(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v)>;
  void set_attention_runner(AttentionRunner runner) { attention_runner_ = std::move(runner); }

  torch::nn::Linear c_attn{nullptr};  // [3C, C]: query, key, value
  torch::nn::Linear c_proj{nullptr};  // [C, C]

 private:
  torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                 double dropout);

  std::int64_t n_head_;
  double dropout_;
  std::shared_ptr<RotaryTable> rotary_;  // null with learned positions
  AttentionRunner attention_runner_;
};
TORCH_MODULE(CausalSelfAttention);

class MlpImpl : public torch::nn::Module {
 public:
  explicit MlpImpl(const GptConfig& config);
  torch::Tensor forward(const torch::Tensor& x);  // c_proj(hidden(x))
  torch::Tensor hidden(const torch::Tensor& x);   // gelu(c_fc(x)): the output projection's input

  torch::nn::Linear c_fc{nullptr};    // [4C, C]
  torch::nn::Linear c_proj{nullptr};  // [C, 4C]
};
TORCH_MODULE(Mlp);

class BlockImpl : public torch::nn::Module {
 public:
  explicit BlockImpl(const GptConfig& config, std::shared_ptr<RotaryTable> rotary = nullptr);
  torch::Tensor forward(const torch::Tensor& x);  // x + attn(ln_1(x)), then + mlp(ln_2(.))
  // The block short of its last matmul: the residual y = x + attn(ln_1(x)) and the MLP's hidden
  // activation h = mlp->hidden(ln_2(y)), so that forward(x) = y + residual_dropout(mlp->c_proj(h)).
  // Checkpointing recomputes only this much (memory/activation_checkpoint.cpp).
  std::pair<torch::Tensor, torch::Tensor> forward_to_output_projection(const torch::Tensor& x);
  ChunkOutput forward_chunk(const torch::Tensor& x, std::int64_t start, const torch::Tensor& past_keys,
                            const torch::Tensor& past_values);

  torch::nn::LayerNorm ln_1{nullptr}, ln_2{nullptr};
  CausalSelfAttention attn{nullptr};
  Mlp mlp{nullptr};
  torch::nn::Dropout residual_dropout{nullptr};
};
TORCH_MODULE(Block);

class GptImpl : public torch::nn::Module {
 public:
  explicit GptImpl(const GptConfig& config);

  // tokens: [B, T] int64 with T <= max_positions -> final hidden states [B, T, C].
  torch::Tensor hidden_states(const torch::Tensor& tokens);
  // -> logits [B, T, vocab] through the tied head.
  torch::Tensor forward(const torch::Tensor& tokens);
  // Sum of the cross-entropy of every target token (targets: [B, T] int64). The caller divides
  // by the token count of the whole optimizer step, so any micro-batch split gives the same mean.
  torch::Tensor loss_sum(const torch::Tensor& tokens, const torch::Tensor& targets);
  // The same from final hidden states [B, T, C] (through the loss head when one is set).
  torch::Tensor loss_from_hidden(const torch::Tensor& hidden, const torch::Tensor& targets);

  // Long windows in chunks (memory/chunked_training.h): tokens [B, T] at positions start ..
  // start + T - 1, attending also to the earlier tokens' keys/values per layer (empty: none).
  // Blocks run through the chunk block runner (checkpointing) if one is set. Returns final hidden
  // states and the chunk's keys/values.
  ChunkOutput hidden_states_chunk(const torch::Tensor& tokens, std::int64_t start,
                                  const std::vector<torch::Tensor>& past_keys,
                                  const std::vector<torch::Tensor>& past_values);

  // GPT-2 initialization: N(0, 0.02) for weights and embeddings, zero biases, and the residual
  // projections (attn.c_proj, mlp.c_proj) at 0.02/sqrt(2·n_layer) (GPT-2 paper, section 2.3).
  void initialize_weights();

  const GptConfig& config() const { return config_; }

  // How each block is run. Memory techniques (src/memory) install one from outside, so the model
  // knows nothing of them; null runs block.forward(x).
  using BlockRunner = std::function<torch::Tensor(BlockImpl& block, std::int64_t index, const torch::Tensor& x)>;
  void set_block_runner(BlockRunner runner) { block_runner_ = std::move(runner); }
  // The same for hidden_states_chunk (blocks with earlier keys/values); null runs block.forward_chunk.
  using ChunkBlockRunner =
      std::function<ChunkOutput(BlockImpl& block, std::int64_t index, const torch::Tensor& x, std::int64_t start,
                                const torch::Tensor& past_keys, const torch::Tensor& past_values)>;
  void set_chunk_block_runner(ChunkBlockRunner runner) { chunk_block_runner_ = std::move(runner); }
  // How loss_sum turns hidden states [B, T, C] into the summed token loss; null: full logits.
  using LossHead = std::function<torch::Tensor(const torch::Tensor& hidden, const torch::Tensor& head_weight,
                                               const torch::Tensor& targets)>;
  void set_loss_head(LossHead head) { loss_head_ = std::move(head); }

  torch::nn::Embedding wte{nullptr};  // [vocab, C], also the LM head
  torch::nn::Embedding wpe{nullptr};  // [max_positions, C]; none with rotary positions
  torch::nn::Dropout embedding_dropout{nullptr};
  torch::nn::ModuleList h{nullptr};  // n_layer Blocks
  torch::nn::LayerNorm ln_f{nullptr};

 private:
  torch::Tensor embed(const torch::Tensor& tokens, std::int64_t start);

  GptConfig config_;
  BlockRunner block_runner_;
  ChunkBlockRunner chunk_block_runner_;
  LossHead loss_head_;
};
TORCH_MODULE(Gpt);

}  // namespace aios
