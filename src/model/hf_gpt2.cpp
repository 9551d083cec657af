#include "model/hf_gpt2.h"

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/files.h"
#include "model/safetensors.h"

namespace aios {
namespace {

bool is_conv1d_weight(const std::string& name) {
  return name.ends_with("c_attn.weight") || name.ends_with("c_proj.weight") || name.ends_with("c_fc.weight");
}

}  // namespace

GptConfig read_hf_gpt2_config(const std::string& directory) {
  const std::string path = join_path(directory, "config.json");
  if (!is_regular_file(path)) {
    throw Error("--init-from", "'" + directory + "' has no config.json", "a Hugging Face GPT-2 directory");
  }
  try {
    const auto json = nlohmann::json::parse(read_text_file(path));
    GptConfig config;
    config.n_layer = json.at("n_layer").get<std::int64_t>();
    config.n_head = json.at("n_head").get<std::int64_t>();
    config.n_embd = json.at("n_embd").get<std::int64_t>();
    config.vocab_size = json.at("vocab_size").get<std::int64_t>();
    config.max_positions = json.at("n_positions").get<std::int64_t>();
    config.layer_norm_eps = json.value("layer_norm_epsilon", 1e-5);
    const std::string activation = json.value("activation_function", "gelu_new");
    if (activation != "gelu_new" && activation != "gelu_pytorch_tanh") {
      throw Error(path, "activation_function '" + activation + "' is not supported", "gelu_new (GPT-2)");
    }
    if (json.contains("n_inner") && !json["n_inner"].is_null() &&
        json["n_inner"].get<std::int64_t>() != 4 * config.n_embd) {
      throw Error(path, "n_inner " + json["n_inner"].dump() + " is not supported", "null or 4 x n_embd");
    }
    if (json.value("scale_attn_by_inverse_layer_idx", false)) {
      throw Error(path, "scale_attn_by_inverse_layer_idx is not supported", "false (GPT-2)");
    }
    check_config(config);
    return config;
  } catch (const nlohmann::json::exception& e) {
    throw Error(path, std::string("is not a GPT-2 config: ") + e.what());
  }
}

void load_hf_gpt2_weights(const std::string& directory, Gpt& model) {
  const std::string path = join_path(directory, "model.safetensors");
  if (!is_regular_file(path)) {
    throw Error("--init-from", "'" + directory + "' has no model.safetensors", "a Hugging Face GPT-2 directory");
  }
  std::map<std::string, at::Tensor> stored;
  for (auto& [name, tensor] : read_safetensors(path)) {
    const std::string key = name.starts_with("transformer.") ? name.substr(12) : name;
    if (key.ends_with(".attn.bias") || key.ends_with(".attn.masked_bias") || key == "lm_head.weight") continue;
    stored[key] = is_conv1d_weight(key) ? tensor.t().contiguous() : tensor;
  }
  at::NoGradGuard no_grad;
  for (auto& item : model->named_parameters()) {
    const auto it = stored.find(item.key());
    if (it == stored.end()) throw Error(path, "has no tensor for parameter '" + item.key() + "'");
    if (it->second.sizes() != item.value().sizes()) {
      throw Error(path, "tensor '" + item.key() + "' has shape " + c10::str(it->second.sizes()) +
                            " but the model expects " + c10::str(item.value().sizes()));
    }
    item.value().copy_(it->second);
    stored.erase(it);
  }
  if (!stored.empty()) throw Error(path, "holds tensor '" + stored.begin()->first + "' that GPT-2 does not have");
}

void save_hf_gpt2(const std::string& directory, Gpt& model, std::optional<std::uint32_t> end_of_text_id) {
  const auto& c = model->config();
  if (c.rope()) {
    throw Error("--export-hf", "a model with rotary positions has no Hugging Face GPT-2 equivalent",
                "--pos learned (GPT-2's position table) to export");
  }
  make_directories(directory);
  const nlohmann::json config = {{"model_type", "gpt2"},
                                 {"architectures", {"GPT2LMHeadModel"}},
                                 {"n_layer", c.n_layer},
                                 {"n_head", c.n_head},
                                 {"n_embd", c.n_embd},
                                 {"vocab_size", c.vocab_size},
                                 {"n_positions", c.max_positions},
                                 {"n_ctx", c.max_positions},
                                 {"layer_norm_epsilon", c.layer_norm_eps},
                                 {"activation_function", "gelu_new"},
                                 {"tie_word_embeddings", true}};
  nlohmann::json with_ids = config;
  if (end_of_text_id) with_ids["bos_token_id"] = with_ids["eos_token_id"] = *end_of_text_id;
  write_file_atomically(join_path(directory, "config.json"), with_ids.dump(2) + "\n");
  std::map<std::string, at::Tensor> tensors;
  for (const auto& item : model->named_parameters()) {
    tensors[item.key()] = is_conv1d_weight(item.key()) ? item.value().t() : item.value();
  }
  write_safetensors(join_path(directory, "model.safetensors"), tensors, {{"format", "pt"}});
}

}  // namespace aios
