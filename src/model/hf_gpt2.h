// Hugging Face GPT-2 checkpoints (config.json + model.safetensors) to and from aios's Gpt.
// HF stores its Conv1D weights as [in, out]; aios's Linear layers are [out, in], so c_attn,
// c_proj and c_fc weights are transposed on the way in and out. The causal-mask buffers
// (attn.bias, attn.masked_bias) are dropped; the LM head is tied to wte.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "model/gpt.h"

namespace aios {

// Reads DIR/config.json into a GptConfig (n_layer, n_head, n_embd, vocab_size, n_positions,
// layer_norm_epsilon). Throws naming the file on a missing key or an unsupported activation.
GptConfig read_hf_gpt2_config(const std::string& directory);

// Copies DIR/model.safetensors into `model`, whose config must match the file's shapes.
void load_hf_gpt2_weights(const std::string& directory, Gpt& model);

// Writes DIR/config.json and DIR/model.safetensors in Hugging Face's layout (safetensors metadata
// {"format": "pt"}, as transformers expects); the end-of-text id, when known, becomes the config's
// bos_token_id and eos_token_id.
void save_hf_gpt2(const std::string& directory, Gpt& model, std::optional<std::uint32_t> end_of_text_id = {});

}  // namespace aios
