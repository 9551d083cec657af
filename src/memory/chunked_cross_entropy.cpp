#include "memory/chunked_cross_entropy.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/csrc/autograd/custom_function.h>

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

struct ChunkedCrossEntropy : public torch::autograd::Function<ChunkedCrossEntropy> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& weight,
                               const at::Tensor& targets, std::int64_t chunk) {
    ctx->save_for_backward({hidden, weight, targets});
    ctx->saved_data["chunk"] = chunk;
    const at::ScalarType compute = matmul_type(hidden);
    ctx->saved_data["compute"] = static_cast<std::int64_t>(compute);
    // Under autocast the matmul would cast anyway; casting once here keeps forward and backward alike.
    const at::Tensor h_all = hidden.to(compute), w = weight.to(compute);
    const std::int64_t n = hidden.size(0);
    auto total = at::zeros({}, hidden.options().dtype(hidden.scalar_type() == at::kDouble ? at::kDouble : at::kFloat));
    for (std::int64_t start = 0; start < n; start += chunk) {
      const std::int64_t length = std::min(chunk, n - start);
      const auto logits = chunk_logits(h_all.narrow(0, start, length), w);
      total += at::cross_entropy_loss(logits, targets.narrow(0, start, length), {}, at::Reduction::Sum);
    }
    return {total};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& hidden = saved[0];
    const at::Tensor& weight = saved[1];
    const at::Tensor& targets = saved[2];
    const std::int64_t chunk = ctx->saved_data["chunk"].toInt();
    const auto compute = static_cast<at::ScalarType>(ctx->saved_data["compute"].toInt());
    const at::Tensor h_all = hidden.to(compute), w = weight.to(compute);
    const std::int64_t n = hidden.size(0);
    const at::Tensor scale = grad_outputs[0];
    auto grad_hidden = at::empty_like(hidden);
    auto grad_weight = at::zeros_like(weight);
    for (std::int64_t start = 0; start < n; start += chunk) {
      const std::int64_t length = std::min(chunk, n - start);
      const auto h = h_all.narrow(0, start, length);
      // d(sum CE)/d logits = softmax(logits) - onehot(target), times the incoming scale.
      auto grad_logits = at::softmax(chunk_logits(h, w), -1);
      grad_logits.scatter_add_(1, targets.narrow(0, start, length).unsqueeze(1),
                               at::full({length, 1}, -1.0, grad_logits.options()));
      grad_logits = (grad_logits * scale).to(compute);
      grad_hidden.narrow(0, start, length).copy_(at::matmul(grad_logits, w));
      if (compute == weight.scalar_type()) {
        grad_weight.addmm_(grad_logits.t(), h);
      } else {
        grad_weight.add_(at::matmul(grad_logits.t(), h));  // low-precision product, fp32 sum
      }
    }
    return {grad_hidden, grad_weight, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

torch::Tensor chunked_cross_entropy_sum(const torch::Tensor& hidden, const torch::Tensor& weight,
                                        const torch::Tensor& targets, std::int64_t chunk_tokens) {
  return ChunkedCrossEntropy::apply(hidden, weight, targets, std::max<std::int64_t>(1, chunk_tokens))[0];
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
  model->set_loss_head([chunk_tokens](const torch::Tensor& hidden, const torch::Tensor& weight,
                                      const torch::Tensor& targets) {
    return chunked_cross_entropy_sum(hidden.reshape({-1, hidden.size(-1)}), weight, targets.reshape({-1}),
                                     chunk_tokens);
  });
}

}  // namespace aios
