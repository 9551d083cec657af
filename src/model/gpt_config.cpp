#include "model/gpt_config.h"

#include "base/error.h"

namespace aios {

std::vector<std::int64_t> GptConfig::parameter_sizes() const {
  const std::int64_t c = n_embd;
  std::vector<std::int64_t> sizes = {vocab_size * c};
  if (position_table() > 0) sizes.push_back(position_table() * c);
  for (std::int64_t l = 0; l < n_layer; ++l) {
    for (const std::int64_t n : {c, c,              // ln_1
                                 3 * c * c, 3 * c,  // qkv
                                 c * c, c,          // attention output
                                 c, c,              // ln_2
                                 4 * c * c, 4 * c,  // MLP up
                                 4 * c * c, c}) {   // MLP down
      sizes.push_back(n);
    }
  }
  sizes.push_back(c);  // ln_f
  sizes.push_back(c);
  return sizes;
}

std::int64_t GptConfig::parameter_count() const {
  std::int64_t total = 0;
  for (const std::int64_t n : parameter_sizes()) total += n;
  return total;
}

double GptConfig::training_flops_per_token(std::int64_t window) const {
  const double matrices = static_cast<double>(parameter_count() - position_table() * n_embd);
  return 6.0 * matrices + 12.0 * static_cast<double>(n_layer * n_embd * window);
}

std::string GptConfig::describe() const {
  return std::to_string(n_layer) + " layers, " + std::to_string(n_head) + " heads, " + std::to_string(n_embd) +
         " wide, vocab " + std::to_string(vocab_size) + ", " +
         (rope() ? std::string("rotary positions") : std::to_string(max_positions) + " positions");
}

GptConfig gpt_preset(const std::string& name) {
  GptConfig c;
  c.vocab_size = 50257;
  c.max_positions = 1024;
  if (name == "tiny") {
    c.n_layer = 4, c.n_head = 4, c.n_embd = 128;
  } else if (name == "gpt2") {
    c.n_layer = 12, c.n_head = 12, c.n_embd = 768;
  } else if (name == "gpt2-medium") {
    c.n_layer = 24, c.n_head = 16, c.n_embd = 1024;
  } else if (name == "gpt2-large") {
    c.n_layer = 36, c.n_head = 20, c.n_embd = 1280;
  } else if (name == "gpt2-xl") {
    c.n_layer = 48, c.n_head = 25, c.n_embd = 1600;
  } else {
    throw Error("--model", "unknown preset '" + name + "'", "tiny, gpt2, gpt2-medium, gpt2-large or gpt2-xl");
  }
  return c;
}

void check_config(const GptConfig& c) {
  if (c.n_layer < 1) throw Error("--n-layer", "value " + std::to_string(c.n_layer) + " is not positive");
  if (c.n_head < 1) throw Error("--n-head", "value " + std::to_string(c.n_head) + " is not positive");
  if (c.n_embd < 1 || c.n_embd % c.n_head != 0) {
    throw Error(
        "--n-embd",
        "width " + std::to_string(c.n_embd) + " is not a positive multiple of --n-head " + std::to_string(c.n_head),
        "a multiple of the head count");
  }
  if (c.vocab_size < 2) throw Error("--vocab-size", "value " + std::to_string(c.vocab_size) + " is too small");
  if (c.max_positions < 1) throw Error("--seq-len", "value " + std::to_string(c.max_positions) + " is not positive");
  if (c.rope() && c.head_dim() % 2 != 0) {
    throw Error("--pos", "rope needs an even head size; " + std::to_string(c.head_dim()) + " is odd",
                "--n-embd / --n-head even");
  }
}

}  // namespace aios
