#include "memory/activation_checkpoint.h"

#include <ATen/autocast_mode.h>
#include <torch/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <optional>

#include "base/rng_state.h"
#include "kernels/linear.h"
#include "memory/kept_attention.h"
#include "memory/mixed_precision.h"

namespace aios {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Forward: remember what the recomputation must replay (RNG streams when the block draws random
// numbers, autocast state), then run with the autocast weight-cast cache off so that no cast
// without autograd history is cached (pytorch#65766). Function::apply already runs forward with
// grad mode off: no activations kept. A block without dropout draws nothing, so its RNG streams
// are left alone: reading a GPU generator's state is refused while a CUDA graph is captured.
class CheckpointedForward {
 public:
  CheckpointedForward(AutogradContext* ctx, const at::Tensor& x, bool draws_random_numbers)
      : autocast_(x.device().type(), at::autocast::is_autocast_enabled(x.device().type()),
                  at::autocast::get_autocast_dtype(x.device().type()), /*cache_enabled=*/false) {
    const at::DeviceType device = x.device().type();
    ctx->saved_data["random"] = draws_random_numbers;
    if (draws_random_numbers) {
      ctx->saved_data["rng_cpu"] = get_rng_state(at::Device(at::kCPU));
      if (x.is_cuda()) ctx->saved_data["rng_device"] = get_rng_state(x.device());
    }
    ctx->saved_data["autocast"] = at::autocast::is_autocast_enabled(device);
    ctx->saved_data["autocast_dtype"] = static_cast<std::int64_t>(at::autocast::get_autocast_dtype(device));
  }

 private:
  AutocastRegion autocast_;
};

// Backward: for the recomputation, fork the RNG (replay the forward's stream, put the current one
// back afterwards), re-enter the forward's autocast state (cache off) and turn grad mode on.
class Recomputation {
 public:
  Recomputation(AutogradContext* ctx, const at::Device& device)
      : device_(device),
        random_(ctx->saved_data["random"].toBool()),
        current_cpu_(random_ ? get_rng_state(at::Device(at::kCPU)) : at::Tensor()),
        current_device_(random_ && device.is_cuda() ? get_rng_state(device) : at::Tensor()),
        grad_mode_(true),
        autocast_(device.type(), ctx->saved_data["autocast"].toBool(),
                  static_cast<at::ScalarType>(ctx->saved_data["autocast_dtype"].toInt()), /*cache_enabled=*/false) {
    if (!random_) return;
    set_rng_state(at::Device(at::kCPU), ctx->saved_data["rng_cpu"].toTensor());
    if (device_.is_cuda()) set_rng_state(device_, ctx->saved_data["rng_device"].toTensor());
  }
  ~Recomputation() {
    if (!random_) return;
    set_rng_state(at::Device(at::kCPU), current_cpu_);
    if (device_.is_cuda()) set_rng_state(device_, current_device_);
  }

 private:
  at::Device device_;
  bool random_;
  at::Tensor current_cpu_, current_device_;
  torch::AutoGradMode grad_mode_;
  AutocastRegion autocast_;
};

// Also whether the block draws random numbers at all: its attention dropout has the same rate.
bool residual_dropout_active(BlockImpl& block) {
  return block.is_training() && block.residual_dropout->options.p() > 0.0;
}

// inputs: the block's input, then its parameters. Returns their gradients.
variable_list recompute_whole_block(BlockImpl& block, const variable_list& inputs, const at::Tensor& grad_output) {
  const auto output = block.forward(inputs[0]);
  return torch::autograd::grad({output}, inputs, {grad_output}, /*retain_graph=*/false, /*create_graph=*/false,
                               /*allow_unused=*/true);
}

// The same without re-running the block's last matmul: nothing the backward needs comes out of
// the MLP's output projection (output = y + c_proj(h)), so the recomputation stops at its input h
// and that one linear layer is differentiated by hand. This is PyTorch's non-reentrant checkpoint
// "early stop"; it saves a third of the block's recomputed matmul FLOPs. Only without residual
// dropout: with it, the mask after c_proj would have to be replayed. The matmuls run in h's type,
// which is the autocast type when the forward ran under autocast, as autograd's would.
variable_list recompute_to_output_projection(BlockImpl& block, const variable_list& inputs,
                                             const at::Tensor& grad_output) {
  const auto [y, h] = block.forward_to_output_projection(inputs[0]);
  const auto& projection = block.mlp->c_proj;
  const auto g = grad_output.reshape({-1, grad_output.size(-1)}).to(h.scalar_type());
  const auto grad_h = g.mm(projection->weight.to(h.scalar_type())).view(h.sizes());
  auto grads = torch::autograd::grad({y, h}, inputs, {grad_output, grad_h}, /*retain_graph=*/false,
                                     /*create_graph=*/false, /*allow_unused=*/true);
  for (std::size_t i = 1; i < inputs.size(); ++i) {
    if (inputs[i].is_same(projection->weight)) {  // as the layer's own backward forms them
      grads[i] = linear_weight_gradient(g, h.reshape({-1, h.size(-1)}), projection->weight.scalar_type());
    } else if (inputs[i].is_same(projection->bias)) {
      grads[i] = linear_bias_gradient(g, projection->bias.scalar_type());
    }
  }
  return grads;
}

struct CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
  // params is an at::TensorList so that autograd counts each parameter as an input (a
  // std::vector<Tensor> argument would be silently treated as a non-variable before torch 2.10).
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& x, at::TensorList params, BlockImpl* block,
                               bool keep_attention) {
    (void)params;
    ctx->saved_data["block"] = reinterpret_cast<std::int64_t>(block);
    ctx->save_for_backward({x});
    const bool random = residual_dropout_active(*block);
    CheckpointedForward scope(ctx, x, random);
    if (!keep_attention || random) return {block->forward(x)};
    KeptAttention kept;
    torch::Tensor output;
    {
      const AttentionThroughKept through(*block->attn, kept);
      output = block->forward(x);
    }
    ctx->saved_data["attention"] = kept.release();
    return {output};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto* block = reinterpret_cast<BlockImpl*>(ctx->saved_data["block"].toInt());
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    variable_list inputs = {x.detach().requires_grad_(x.requires_grad())};
    const auto params = block->parameters();
    inputs.insert(inputs.end(), params.begin(), params.end());
    // The attention output kept by the forward, if any, leaves the context with the recomputation.
    KeptAttention kept = KeptAttention::from(ctx->saved_data["attention"]);
    ctx->saved_data.erase("attention");
    variable_list grads;
    {
      Recomputation scope(ctx, x.device());
      std::optional<AttentionThroughKept> through;
      if (kept.holds()) through.emplace(*block->attn, kept);
      grads = residual_dropout_active(*block) ? recompute_whole_block(*block, inputs, grad_outputs[0])
                                              : recompute_to_output_projection(*block, inputs, grad_outputs[0]);
    }

    if (!x.requires_grad()) grads[0] = at::Tensor();
    grads.push_back(at::Tensor());  // block pointer
    grads.push_back(at::Tensor());  // keep_attention
    return grads;
  }
};

// The same for a chunk of a long window: inputs x and the earlier tokens' keys/values, outputs the
// block's output and the chunk's own keys/values (read by later chunks, so they get gradients too).
struct ChunkCheckpointFunction : public torch::autograd::Function<ChunkCheckpointFunction> {
  // Without earlier tokens, past_keys/past_values are stand-ins (x) and has_past is false: autograd
  // Functions take no undefined tensors.
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& past_keys,
                               const torch::Tensor& past_values, at::TensorList params, BlockImpl* block,
                               std::int64_t start, bool has_past) {
    (void)params;
    ctx->saved_data["block"] = reinterpret_cast<std::int64_t>(block);
    ctx->saved_data["start"] = start;
    ctx->saved_data["has_past"] = has_past;
    ctx->save_for_backward(has_past ? variable_list{x, past_keys, past_values} : variable_list{x});
    CheckpointedForward scope(ctx, x, residual_dropout_active(*block));
    auto out =
        block->forward_chunk(x, start, has_past ? past_keys : at::Tensor(), has_past ? past_values : at::Tensor());
    return {out.output, out.keys[0], out.values[0]};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto* block = reinterpret_cast<BlockImpl*>(ctx->saved_data["block"].toInt());
    const bool has_past = ctx->saved_data["has_past"].toBool();
    const auto saved = ctx->get_saved_variables();
    // Fresh leaves for x and the earlier keys/values. Only those that required gradients are
    // differentiated: truncated chunks read detached keys/values of earlier chunks, and
    // autograd::grad refuses an input that does not require one.
    const auto leaf = [](const at::Tensor& t) { return t.detach().requires_grad_(t.requires_grad()); };
    const at::Tensor x = leaf(saved[0]);
    const at::Tensor past_keys = has_past ? leaf(saved[1]) : at::Tensor();
    const at::Tensor past_values = has_past ? leaf(saved[2]) : at::Tensor();
    variable_list inputs;
    for (const auto& t : {x, past_keys, past_values}) {
      if (t.defined() && t.requires_grad()) inputs.push_back(t);
    }
    const std::size_t first_param = inputs.size();
    const auto params = block->parameters();
    inputs.insert(inputs.end(), params.begin(), params.end());
    variable_list grads;
    {
      Recomputation scope(ctx, x.device());
      auto out = block->forward_chunk(x, ctx->saved_data["start"].toInt(), past_keys, past_values);
      grads = torch::autograd::grad({out.output, out.keys[0], out.values[0]}, inputs, grad_outputs,
                                    /*retain_graph=*/false, /*create_graph=*/false, /*allow_unused=*/true);
    }
    // Gradients in the order of forward's arguments: x, past keys, past values, the parameters.
    std::size_t next = 0;
    variable_list result;
    for (const auto& t : {x, past_keys, past_values}) {
      result.push_back(t.defined() && t.requires_grad() ? grads[next++] : at::Tensor());
    }
    result.insert(result.end(), grads.begin() + static_cast<std::ptrdiff_t>(first_param), grads.end());
    result.push_back(at::Tensor());  // block pointer
    result.push_back(at::Tensor());  // start
    result.push_back(at::Tensor());  // has_past
    return result;
  }
};

}  // namespace

ChunkOutput checkpointed_block_forward_chunk(BlockImpl& block, const torch::Tensor& x, std::int64_t start,
                                             const torch::Tensor& past_keys, const torch::Tensor& past_values) {
  const auto params = block.parameters();
  const bool has_past = past_keys.defined() && past_keys.size(2) > 0;
  auto out = ChunkCheckpointFunction::apply(x, has_past ? past_keys : x, has_past ? past_values : x,
                                            at::TensorList(params), &block, start, has_past);
  return {out[0], {out[1]}, {out[2]}};
}

torch::Tensor checkpointed_block_forward(BlockImpl& block, const torch::Tensor& x, bool keep_attention) {
  const auto params = block.parameters();
  // Without gradients (evaluation) no backward will read a kept output.
  const bool keep = keep_attention && at::GradMode::is_enabled();
  return CheckpointFunction::apply(x, at::TensorList(params), &block, keep)[0];
}

void apply_activation_checkpointing(Gpt& model, std::int64_t every, bool keep_attention) {
  if (every <= 0) {
    model->set_block_runner(nullptr);
    model->set_chunk_block_runner(nullptr);
    return;
  }
  model->set_block_runner([every, keep_attention](BlockImpl& block, std::int64_t index, const torch::Tensor& x) {
    return index % every == 0 ? checkpointed_block_forward(block, x, keep_attention) : block.forward(x);
  });
  model->set_chunk_block_runner([every](BlockImpl& block, std::int64_t index, const torch::Tensor& x,
                                        std::int64_t start, const torch::Tensor& past_keys,
                                        const torch::Tensor& past_values) {
    return index % every == 0 ? checkpointed_block_forward_chunk(block, x, start, past_keys, past_values)
                              : block.forward_chunk(x, start, past_keys, past_values);
  });
}

}  // namespace aios
