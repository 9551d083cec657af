#include "memory/chunked_cross_entropy.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/version.h>

#include <algorithm>

namespace aios {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The matmuls run in the autocast type when the forward ran under autocast (the backward runs
// outside the autocast region, so it is stated explicitly); the softmax always in fp32 (float64
// stays float64).
at::ScalarType matmul_type(const at::Tensor& hidden) {
  const auto device = hidden.device().type();
  return at::autocast::is_autocast_enabled(device) && hidden.scalar_type() == at::kFloat
             ? at::autocast::get_autocast_dtype(device)
             : hidden.scalar_type();
}

// Logits of one chunk; `hidden` and `weight` already in the matmul type.
at::Tensor chunk_logits(const at::Tensor& hidden, const at::Tensor& weight) {
  auto logits = at::matmul(hidden, weight.t());
  return logits.scalar_type() == at::kDouble ? logits : logits.to(at::kFloat);
}

// One chunk's share of the head's weight gradient, gᵀ·h, to be summed in fp32. With 16-bit
// operands on CUDA, cuBLAS writes the product in fp32 (ATen's mm with out_dtype, PyTorch 2.8+), so
// no chunk's partial sum is rounded to 16 bits before the chunks are added; the unchunked head
// rounds its one product once. ATen has no such kernel on the CPU, where the product is rounded.
at::Tensor weight_gradient_part(const at::Tensor& g, const at::Tensor& h) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 8)
  if (g.is_cuda() && (g.scalar_type() == at::kBFloat16 || g.scalar_type() == at::kHalf)) {
    return at::mm(g.t(), h, at::kFloat);
  }
#endif
  return at::mm(g.t(), h);
}

// Forward computes each chunk's loss and, when gradients are wanted, the chunk's gradient while
// its logits are at hand: d(sum CE)/d logits = softmax - onehot(target), pushed through the head
// (grad_hidden = g·W, grad_weight += gᵀ·h). Backward then only multiplies by the incoming scale.
// Same FLOPs as the unchunked loss (no logits recomputed in backward), as in Liger's fused
// linear cross-entropy. The gradients are of the *sum* (O(1) per token), so forming them before
// fp16 loss scaling is applied loses nothing to underflow.
struct ChunkedCrossEntropy : public torch::autograd::Function<ChunkedCrossEntropy> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& weight,
                               const at::Tensor& targets, std::int64_t chunk, bool with_gradients) {
    const at::ScalarType compute = matmul_type(hidden);
    // Under autocast the matmul would cast anyway; casting once here serves every chunk.
    const at::Tensor h_all = hidden.to(compute), w = weight.to(compute);
    const std::int64_t n = hidden.size(0);
    auto total = at::zeros({}, hidden.options().dtype(hidden.scalar_type() == at::kDouble ? at::kDouble : at::kFloat));
    at::Tensor grad_hidden, grad_weight;
    if (with_gradients) {
      grad_hidden = at::empty_like(hidden);
      grad_weight = at::zeros_like(weight);
    }
    for (std::int64_t start = 0; start < n; start += chunk) {
      const std::int64_t length = std::min(chunk, n - start);
      const auto h = h_all.narrow(0, start, length);
      const auto target = targets.narrow(0, start, length).unsqueeze(1);
      auto log_probs = chunk_logits(h, w);  // fp32 (float64 stays float64), turned in place into:
      log_probs.sub_(at::logsumexp(log_probs, -1, /*keepdim=*/true));
      total -= log_probs.gather(1, target).sum();
      if (!with_gradients) continue;
      auto grad_logits = log_probs.exp_();  // softmax
      grad_logits.scatter_add_(1, target, at::full({length, 1}, -1.0, grad_logits.options()));
      const auto g = grad_logits.to(compute);
      grad_hidden.narrow(0, start, length).copy_(at::matmul(g, w));
      if (compute == weight.scalar_type()) {
        grad_weight.addmm_(g.t(), h);
      } else {
        grad_weight.add_(weight_gradient_part(g, h));  // 16-bit operands, fp32 sum
      }
    }
    ctx->saved_data["with_gradients"] = with_gradients;
    if (with_gradients) ctx->save_for_backward({grad_hidden, grad_weight});
    return {total};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    TORCH_CHECK(ctx->saved_data["with_gradients"].toBool(),
                "chunked cross-entropy: backward of a loss computed without gradients (grad mode was off)");
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& scale = grad_outputs[0];
    return {saved[0] * scale.to(saved[0].scalar_type()), saved[1] * scale.to(saved[1].scalar_type()), at::Tensor(),
            at::Tensor(), at::Tensor()};
  }
};

}  // namespace

torch::Tensor chunked_cross_entropy_sum(const torch::Tensor& hidden, const torch::Tensor& weight,
                                        const torch::Tensor& targets, std::int64_t chunk_tokens) {
  // Gradients are formed in the forward only when a backward can follow (not in evaluation).
  const bool with_gradients = at::GradMode::is_enabled() && (hidden.requires_grad() || weight.requires_grad());
  return ChunkedCrossEntropy::apply(hidden, weight, targets, std::max<std::int64_t>(1, chunk_tokens),
                                    with_gradients)[0];
}

std::int64_t default_loss_chunk_tokens(std::int64_t vocab_size) {
  constexpr std::int64_t kTargetBytes = 256LL << 20;
  return std::max<std::int64_t>(128, kTargetBytes / (4 * std::max<std::int64_t>(1, vocab_size)));
}

void apply_chunked_loss(Gpt& model, std::int64_t chunk_tokens) {
  if (chunk_tokens <= 0) {
    model->set_loss_head(nullptr);
    return;
  }
  model->set_loss_head(
      [chunk_tokens](const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& targets) {
        return chunked_cross_entropy_sum(hidden.reshape({-1, hidden.size(-1)}), weight, targets.reshape({-1}),
                                         chunk_tokens);
      });
}

}  // namespace aios
