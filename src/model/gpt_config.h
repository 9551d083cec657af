// Shape of a GPT-2 style model: presets tiny (CPU tests and demo) through gpt2-xl, with
// per-field overrides.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "base/enum_names.h"

namespace aios {

// learned: GPT-2's position table (windows up to max_positions); rope: rotary embeddings on
// queries and keys (no table, no window limit).
enum class PositionEncoding { kLearned, kRope };
constexpr std::array<EnumName<PositionEncoding>, 2> enum_names(PositionEncoding) {
  return {{{PositionEncoding::kLearned, "learned"}, {PositionEncoding::kRope, "rope"}}};
}

struct GptConfig {
  std::int64_t n_layer = 0;
  std::int64_t n_head = 0;
  std::int64_t n_embd = 0;
  std::int64_t vocab_size = 0;
  std::int64_t max_positions = 0;  // learned position table: the longest window the model takes
  PositionEncoding position = PositionEncoding::kLearned;
  double rope_theta = 10000.0;
  double dropout = 0.0;
  double layer_norm_eps = 1e-5;

  std::int64_t head_dim() const { return n_embd / n_head; }
  bool rope() const { return position == PositionEncoding::kRope; }
  std::int64_t position_table() const { return rope() ? 0 : max_positions; }  // rows of wpe
  // Parameters, counting the tied embedding once.
  std::int64_t parameter_count() const;
  // Elements of each parameter tensor, in the model's registration order (wte, wpe, each block's
  // ln_1, attention, ln_2 and MLP weights and biases, ln_f): what sizes optimizer state per tensor.
  std::vector<std::int64_t> parameter_sizes() const;
  // Training FLOPs per token at a window of `window` tokens: 6·N for the matrices (forward and
  // backward) plus 12·layers·width·window for attention scores (PaLM, appendix B).
  double training_flops_per_token(std::int64_t window) const;
  std::string describe() const;  // "12 layers, 12 heads, 768 wide, vocab 50257, 1024 positions"
};

// name: tiny | gpt2 | gpt2-medium | gpt2-large | gpt2-xl. Throws naming --model otherwise.
GptConfig gpt_preset(const std::string& name);

// Throws naming the option when the shape is inconsistent (width not divisible by heads, ...).
void check_config(const GptConfig& config);

}  // namespace aios
