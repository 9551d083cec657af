#include "kernels/fused_classifier.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>

#if AIOS_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>

#include "kernels/aten_element_type.h"
#include "kernels/cross_entropy_cuda.h"
#include "kernels/cuda_images.h"
#endif
#include "kernels/linear.h"

namespace aios {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

#if AIOS_WITH_CUDA
bool kernel_runs(const at::Tensor& logits) {
  const auto type = logits.scalar_type();
  return logits.is_cuda() && logits.dim() == 2 && logits.stride(1) == 1 &&
         (type == at::kFloat || type == at::kBFloat16 || type == at::kHalf) &&
         own_kernels_run_on(logits.device().index());
}

#endif

// The reference: float32 math (float64 stays float64), in place where the logits are float32.
at::Tensor cross_entropy_rows_aten(at::Tensor& logits, const at::Tensor& targets, bool write_gradient) {
  auto log_probs = logits.scalar_type() == at::kDouble ? logits : logits.to(at::kFloat);  // float32: no copy
  if (!write_gradient && log_probs.is_same(logits)) log_probs = log_probs.clone();        // logits stay as given
  const auto target = targets.unsqueeze(1);
  log_probs.sub_(at::logsumexp(log_probs, -1, /*keepdim=*/true));
  auto losses = -log_probs.gather(1, target).squeeze(1);
  if (write_gradient) {
    auto softmax = log_probs.exp_();
    softmax.scatter_add_(1, target, at::full({softmax.size(0), 1}, -1.0, softmax.options()));
    if (!softmax.is_same(logits)) logits.copy_(softmax);
  }
  return losses;
}

// cuBLAS runs its fast kernels only when every leading dimension is a multiple of 16 bytes; with a
// vocabulary such as GPT-2's 50,257 the head's three GEMMs fall back to unaligned kernels, 30 ms
// instead of 5 per GPT-2 step of 16 windows on an H200. So the head multiplies by the weight padded
// with zero rows to a multiple of kVocabularyMultiple: the logits' padded columns are never read by
// the loss (it sees the first `vocab` columns, a strided view), their gradient columns stay zero,
// and the weight gradient's padded rows are dropped. The math is that of the unpadded head.
constexpr std::int64_t kVocabularyMultiple = 64;

std::int64_t padded_vocabulary(std::int64_t vocab, std::int64_t multiple) {
  return (vocab + multiple - 1) / multiple * multiple;
}

// The weight in the matmul type, with zero rows up to `rows` (no copy when neither is needed).
at::Tensor classifier_weight(const at::Tensor& weight, at::ScalarType type, std::int64_t rows) {
  if (rows == weight.size(0)) return weight.to(type);
  auto padded = at::zeros({rows, weight.size(1)}, weight.options().dtype(type));
  padded.narrow(0, 0, weight.size(0)).copy_(weight);
  return padded;
}

// Forward computes each chunk's loss and, when gradients are wanted, the chunk's gradient while
// its logits are at hand: d(Σ CE)/d logits = softmax − onehot(target), pushed through the head
// (grad_hidden = g·W, grad_weight += gᵀ·h). Backward then only multiplies by the incoming scale.
// Same FLOPs as autograd through the logits (none recomputed), as in Liger's fused linear
// cross-entropy. The gradients are of the *sum* (O(1) per token), so forming them before fp16 loss
// scaling is applied loses nothing to underflow.
struct FusedClassifier : public torch::autograd::Function<FusedClassifier> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& weight,
                               const at::Tensor& targets, std::int64_t chunk, bool with_gradients,
                               std::int64_t vocabulary_multiple) {
    // Stated here because the backward runs outside the autocast region.
    const at::ScalarType compute = matmul_type(hidden);
    const std::int64_t vocab = weight.size(0), padded = padded_vocabulary(vocab, vocabulary_multiple);
    // Under autocast the matmul would cast anyway; casting once here serves every chunk.
    const at::Tensor h_all = hidden.to(compute), w = classifier_weight(weight, compute, padded);
    const std::int64_t n = hidden.size(0);
    auto total = at::zeros({}, hidden.options().dtype(hidden.scalar_type() == at::kDouble ? at::kDouble : at::kFloat));
    at::Tensor grad_hidden, grad_weight;
    if (with_gradients && chunk < n) grad_hidden = at::empty_like(hidden);
    for (std::int64_t start = 0; start < n; start += chunk) {
      const std::int64_t length = std::min(chunk, n - start);
      const auto h = h_all.narrow(0, start, length);
      const auto padded_logits = at::matmul(h, w.t());  // in the matmul type; becomes the gradient g below
      auto logits = padded == vocab ? padded_logits : padded_logits.narrow(1, 0, vocab);
      total += cross_entropy_rows_(logits, targets.narrow(0, start, length), with_gradients).sum();
      if (!with_gradients) continue;
      const auto& g = padded_logits;
      if (length == n) {
        grad_hidden = at::matmul(g, w).to(hidden.scalar_type());
      } else {
        grad_hidden.narrow(0, start, length).copy_(at::matmul(g, w));
      }
      // In the weight's type (float32 from 16-bit operands), the later chunks added into the first's.
      if (grad_weight.defined()) {
        add_linear_weight_gradient(grad_weight, g, h);
      } else {
        grad_weight = linear_weight_gradient(g, h, weight.scalar_type());
      }
    }
    ctx->saved_data["with_gradients"] = with_gradients;
    if (with_gradients) ctx->save_for_backward({grad_hidden, grad_weight.narrow(0, 0, vocab)});
    return {total};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    TORCH_CHECK(ctx->saved_data["with_gradients"].toBool(),
                "fused classifier: backward of a loss computed without gradients (grad mode was off)");
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& scale = grad_outputs[0];
    return {saved[0] * scale.to(saved[0].scalar_type()),
            saved[1] * scale.to(saved[1].scalar_type()),
            at::Tensor(),
            at::Tensor(),
            at::Tensor(),
            at::Tensor()};
  }
};

}  // namespace

at::Tensor cross_entropy_rows_(at::Tensor& logits, const at::Tensor& targets, bool write_gradient) {
#if AIOS_WITH_CUDA
  if (kernel_runs(logits)) {
    const auto target = targets.to(at::kLong).contiguous();
    auto losses = at::empty({logits.size(0)}, logits.options().dtype(at::kFloat));
    launch_cross_entropy_rows(logits.data_ptr(), element_type_of(logits.scalar_type()), logits.size(0), logits.size(1),
                              logits.stride(0), target.data_ptr<std::int64_t>(), losses.data_ptr<float>(),
                              write_gradient, at::cuda::getCurrentCUDAStream(logits.device().index()).stream());
    return losses;
  }
#endif
  return cross_entropy_rows_aten(logits, targets, write_gradient);
}

std::string cross_entropy_path(const at::Tensor& logits) {
#if AIOS_WITH_CUDA
  if (kernel_runs(logits)) return "fused CUDA kernel";
#else
  (void)logits;
#endif
  return "ATen ops";
}

at::Tensor fused_classifier_loss_sum(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                                     std::int64_t chunk_tokens, std::int64_t vocabulary_multiple) {
  // Gradients are formed in the forward only when a backward can follow (not in evaluation).
  const bool with_gradients = at::GradMode::is_enabled() && (hidden.requires_grad() || weight.requires_grad());
  if (vocabulary_multiple <= 0) vocabulary_multiple = weight.is_cuda() ? kVocabularyMultiple : 1;
  return FusedClassifier::apply(hidden, weight, targets, std::max<std::int64_t>(1, chunk_tokens), with_gradients,
                                vocabulary_multiple)[0];
}

}  // namespace aios
