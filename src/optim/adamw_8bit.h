// AdamW with blockwise 8-bit moments (optim/blockwise_quantization.h): each step dequantizes a
// block's first and second moment, updates them and the parameter in fp32, and requantizes them
// with the block's new absmax. State: 2 bytes per parameter plus 8 bytes per 256 (two absmax),
// against 8 bytes for fp32 AdamW. Tensors under `min_8bit_size` elements (biases, LayerNorm
// gains) keep fp32 moments: they save little and are the most sensitive.
//
// The update is torch.optim.AdamW's, in its order: decoupled decay p·(1 − lr·wd) first, then
// p − lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + eps), with m and v the unquantized new moments
// (bitsandbytes applies the decay after the update; torchao and PyTorch before).
//
// Two implementations of one step: a reference in ATen ops (any device; the CPU path) and a
// fused CUDA kernel (one pass over grad, param, codes and absmax; one launch for all the 8-bit
// tensors of a group) used for float32 parameters on CUDA when the build has CUDA. Tests check
// them against each other.
#pragma once

#include "optim/optimizer.h"

namespace aios {

class AdamW8bit : public Optimizer {
 public:
  static constexpr std::int64_t kDefaultMin8bitSize = 4096;

  AdamW8bit(std::vector<Group> groups, const AdamWSettings& settings, std::int64_t min_8bit_size = kDefaultMin8bitSize);

  void step() override;
  std::string kind() const override { return "adamw-8bit"; }
  std::int64_t state_bytes() const override;
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;

  // Tests: force the ATen reference even where the CUDA kernel could run.
  void use_reference_implementation(bool on) { reference_only_ = on; }
  std::int64_t quantized_parameters() const;  // elements whose moments are 8-bit

 private:
  struct ParamState {
    bool quantized = false;
    at::Tensor exp_avg, exp_avg_sq;        // fp32 moments (small tensors)
    at::Tensor step;                       // float32 scalar (fused fp32 path)
    at::Tensor codes_avg, codes_avg_sq;    // uint8 [n] (8-bit tensors)
    at::Tensor absmax_avg, absmax_avg_sq;  // float32 [ceil(n/256)]
  };
  struct QuantizedParam {
    at::Tensor* param;
    const at::Tensor* grad;
    ParamState* state;
  };
  // The 8-bit tensors of one group (one weight decay): on CUDA one multi-tensor kernel, else the
  // reference's ATen ops tensor by tensor.
  void step_quantized(const std::vector<QuantizedParam>& quantized, double weight_decay);

  std::vector<std::vector<ParamState>> state_;  // [group][param]
  // Steps taken by the 8-bit tensors (bias correction): a float32 scalar on the parameters' device,
  // counted there so that a step replayed from a CUDA graph counts too (exact to 2^24 steps).
  at::Tensor quantized_steps_;
  at::Tensor map_signed_, map_unsigned_;      // on the parameters' device
  at::Tensor table_signed_, table_unsigned_;  // their search tables (optim/code_search.h), there too
  bool reference_only_ = false;
};

}  // namespace aios
