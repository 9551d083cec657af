#include "optim/adamw_8bit.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "base/error.h"
#include "optim/adamw.h"
#include "optim/blockwise_quantization.h"
#if AIOS_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>

#include "kernels/cuda_images.h"
#include "optim/adamw_8bit_cuda.h"
#endif

namespace aios {
namespace {
constexpr const char* kMapId = "dynamic-8bit-v1";  // bitsandbytes' dynamic map, 256-element blocks
}  // namespace

AdamW8bit::AdamW8bit(std::vector<Group> groups, const AdamWSettings& s, std::int64_t min_8bit_size)
    : Optimizer(std::move(groups), s) {
  for (const auto& group : groups_) {
    std::vector<ParamState> states;
    for (std::size_t i = 0; i < group.params.size(); ++i) {
      const auto& p = group.params[i];
      ParamState state;
      // Decided on the whole parameter (ZeRO shards carry its size), never on a shard.
      const std::int64_t whole = group.full_numel.empty() ? p.numel() : group.full_numel[i];
      state.quantized = whole >= min_8bit_size;
      if (state.quantized) {
        const std::int64_t blocks = (p.numel() + kQuantizationBlock - 1) / kQuantizationBlock;
        // Code 0 is not zero in these maps: start from the codes of 0 with absmax 0.
        state.codes_avg = at::empty({p.numel()}, p.options().dtype(at::kByte));
        state.codes_avg_sq = at::empty({p.numel()}, p.options().dtype(at::kByte));
        state.absmax_avg = at::zeros({blocks}, p.options().dtype(at::kFloat));
        state.absmax_avg_sq = at::zeros({blocks}, p.options().dtype(at::kFloat));
      } else {
        state.exp_avg = at::zeros_like(p, at::MemoryFormat::Preserve);
        state.exp_avg_sq = at::zeros_like(p, at::MemoryFormat::Preserve);
        state.step = at::zeros({}, p.options().dtype(at::kFloat));
      }
      states.push_back(std::move(state));
    }
    state_.push_back(std::move(states));
  }
  const auto device = groups_.empty() || groups_.front().params.empty() ? at::Device(at::kCPU)
                                                                        : groups_.front().params.front().device();
  quantized_steps_ = at::zeros({}, at::TensorOptions(device).dtype(at::kFloat));
  const auto map_signed = dynamic_quantization_map(true), map_unsigned = dynamic_quantization_map(false);
  map_signed_ = map_signed.to(device);
  map_unsigned_ = map_unsigned.to(device);
  table_signed_ = code_search_table(map_signed).to(device);
  table_unsigned_ = code_search_table(map_unsigned).to(device);
  const auto zero_signed = at::searchsorted(map_signed_, at::zeros({1}, map_signed_.options())).item<std::int64_t>();
  const auto zero_unsigned =
      at::searchsorted(map_unsigned_, at::zeros({1}, map_unsigned_.options())).item<std::int64_t>();
  for (auto& states : state_) {
    for (auto& state : states) {
      if (!state.quantized) continue;
      state.codes_avg.fill_(zero_signed);
      state.codes_avg_sq.fill_(zero_unsigned);
    }
  }
}

void AdamW8bit::step_quantized(const std::vector<QuantizedParam>& quantized, double weight_decay) {
#if AIOS_WITH_CUDA
  // One kernel for all of them where every tensor can take it (the usual case: all on one GPU).
  const auto kernel_takes = [&](const QuantizedParam& q) {
    return q.param->is_cuda() && q.param->scalar_type() == at::kFloat && q.param->is_contiguous() &&
           own_kernels_run_on(q.param->device().index());
  };
  if (!reference_only_ && lr_on_device_.defined() && !quantized.empty() &&
      std::all_of(quantized.begin(), quantized.end(), kernel_takes)) {
    std::vector<at::Tensor> grads;  // kept alive until the launch is queued
    std::vector<Adamw8bitTensor> tensors;
    grads.reserve(quantized.size());
    tensors.reserve(quantized.size());
    for (const auto& q : quantized) {
      grads.push_back(q.grad->to(at::kFloat).contiguous());
      tensors.push_back({q.param->data_ptr<float>(), grads.back().data_ptr<float>(),
                         q.state->codes_avg.data_ptr<std::uint8_t>(), q.state->codes_avg_sq.data_ptr<std::uint8_t>(),
                         q.state->absmax_avg.data_ptr<float>(), q.state->absmax_avg_sq.data_ptr<float>(),
                         q.param->numel()});
    }
    const Adamw8bitStep step{
        lr_on_device_.data_ptr<float>(), quantized_steps_.data_ptr<float>(), beta1_, beta2_, eps_, weight_decay};
    const Adamw8bitMaps maps{map_signed_.data_ptr<float>(), map_unsigned_.data_ptr<float>(),
                             table_signed_.data_ptr<std::uint8_t>(), table_unsigned_.data_ptr<std::uint8_t>()};
    launch_adamw_8bit(tensors.data(), static_cast<int>(tensors.size()), maps, step,
                      at::cuda::getCurrentCUDAStream(quantized.front().param->device().index()).stream());
    return;
  }
#endif
  // Reference: dequantize -> fp32 AdamW update -> requantize with the new absmax.
  if (quantized.empty()) return;
  const double t = quantized_steps_.item<double>();  // sync on a GPU: the reference is for tests there
  const double bias1 = 1.0 - std::pow(beta1_, t), bias2 = 1.0 - std::pow(beta2_, t);
  for (const auto& q : quantized) {
    if (q.param->numel() == 0) continue;  // an empty ZeRO shard
    auto flat = q.param->view({-1});
    ParamState& state = *q.state;
    const auto g = q.grad->reshape({-1}).to(at::kFloat);
    auto m = dequantize_blockwise(state.codes_avg, state.absmax_avg, map_signed_);
    auto v = dequantize_blockwise(state.codes_avg_sq, state.absmax_avg_sq, map_unsigned_);
    m.mul_(beta1_).add_(g, 1.0 - beta1_);
    v.mul_(beta2_).addcmul_(g, g, 1.0 - beta2_);
    const auto denom = (v.sqrt() / std::sqrt(bias2)).add_(eps_);
    const auto update = m / denom;
    if (weight_decay != 0) flat.mul_(1.0 - lr_ * weight_decay);
    flat.add_(update.to(flat.scalar_type()), -lr_ / bias1);
    quantize_blockwise_into(m, map_signed_, state.codes_avg, state.absmax_avg);
    quantize_blockwise_into(v, map_unsigned_, state.codes_avg_sq, state.absmax_avg_sq);
  }
}

void AdamW8bit::step() {
  at::NoGradGuard no_grad;
  quantized_steps_.add_(1);
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    std::vector<at::Tensor> params, grads, exp_avg, exp_avg_sq, steps;
    std::vector<QuantizedParam> quantized;
    for (std::size_t i = 0; i < groups_[g].params.size(); ++i) {
      auto& p = groups_[g].params[i];
      if (!p.grad().defined()) continue;
      ParamState& state = state_[g][i];
      if (state.quantized) {
        quantized.push_back({&p, &p.grad(), &state});
      } else {
        params.push_back(p);
        grads.push_back(p.grad());
        exp_avg.push_back(state.exp_avg);
        exp_avg_sq.push_back(state.exp_avg_sq);
        steps.push_back(state.step);
      }
    }
    step_quantized(quantized, groups_[g].weight_decay);
    fused_adamw_update(params, grads, exp_avg, exp_avg_sq, steps, lr_, lr_on_device_, beta1_, beta2_,
                       groups_[g].weight_decay, eps_);
  }
}

std::int64_t AdamW8bit::quantized_parameters() const {
  std::int64_t count = 0;
  for (const auto& states : state_) {
    for (const auto& state : states) count += state.quantized ? state.codes_avg.numel() : 0;
  }
  return count;
}

std::int64_t AdamW8bit::state_bytes() const {
  std::int64_t bytes = 0;
  for (const auto& states : state_) {
    for (const auto& s : states) {
      bytes += s.quantized ? static_cast<std::int64_t>(s.codes_avg.nbytes() + s.codes_avg_sq.nbytes() +
                                                       s.absmax_avg.nbytes() + s.absmax_avg_sq.nbytes())
                           : static_cast<std::int64_t>(s.exp_avg.nbytes() + s.exp_avg_sq.nbytes() + s.step.nbytes());
    }
  }
  return bytes;
}

void AdamW8bit::save(torch::serialize::OutputArchive& archive) const {
  // The block size and map travel with the codes: a different one would misread every value.
  archive.write("map_id", c10::IValue(std::string(kMapId)));
  archive.write("block_size", c10::IValue(kQuantizationBlock));
  archive.write("quantized_steps", c10::IValue(static_cast<std::int64_t>(quantized_steps_.item<double>())));  // sync
  for (std::size_t g = 0; g < state_.size(); ++g) {
    for (std::size_t i = 0; i < state_[g].size(); ++i) {
      const std::string key = std::to_string(g) + "." + std::to_string(i);
      const ParamState& s = state_[g][i];
      if (s.quantized) {
        archive.write("codes_avg." + key, s.codes_avg, /*is_buffer=*/true);
        archive.write("codes_avg_sq." + key, s.codes_avg_sq, /*is_buffer=*/true);
        archive.write("absmax_avg." + key, s.absmax_avg, /*is_buffer=*/true);
        archive.write("absmax_avg_sq." + key, s.absmax_avg_sq, /*is_buffer=*/true);
      } else {
        archive.write("exp_avg." + key, s.exp_avg, /*is_buffer=*/true);
        archive.write("exp_avg_sq." + key, s.exp_avg_sq, /*is_buffer=*/true);
        archive.write("step." + key, s.step, /*is_buffer=*/true);
      }
    }
  }
}

void AdamW8bit::load(torch::serialize::InputArchive& archive) {
  c10::IValue value;
  if (!archive.try_read("map_id", value) || value.toStringRef() != kMapId) {
    throw Error("checkpoint", "8-bit optimizer state has another quantization map or none",
                std::string("map '") + kMapId + "' written by --use-8bit-optimizer");
  }
  archive.read("block_size", value);
  if (value.toInt() != kQuantizationBlock) {
    throw Error("checkpoint", "8-bit optimizer state uses blocks of " + std::to_string(value.toInt()),
                "blocks of " + std::to_string(kQuantizationBlock));
  }
  archive.read("quantized_steps", value);
  quantized_steps_.fill_(static_cast<double>(value.toInt()));
  for (std::size_t g = 0; g < state_.size(); ++g) {
    for (std::size_t i = 0; i < state_[g].size(); ++i) {
      const std::string key = std::to_string(g) + "." + std::to_string(i);
      ParamState& s = state_[g][i];
      if (s.quantized) {
        restore_state_tensor(archive, "codes_avg." + key, s.codes_avg);
        restore_state_tensor(archive, "codes_avg_sq." + key, s.codes_avg_sq);
        restore_state_tensor(archive, "absmax_avg." + key, s.absmax_avg);
        restore_state_tensor(archive, "absmax_avg_sq." + key, s.absmax_avg_sq);
      } else {
        restore_state_tensor(archive, "exp_avg." + key, s.exp_avg);
        restore_state_tensor(archive, "exp_avg_sq." + key, s.exp_avg_sq);
        restore_state_tensor(archive, "step." + key, s.step);
      }
    }
  }
}

}  // namespace aios
