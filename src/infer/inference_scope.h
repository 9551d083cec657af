// What every use of a trained model (generation, evaluation) sets for its duration and restores
// after, also when an error unwinds through it: no autograd, eval mode (no dropout), autocast as
// asked, and no cuDNN attention (a graph planned per new sequence length costs more than it saves).
#pragma once

#include <torch/types.h>

#include "memory/mixed_precision.h"
#include "model/causal_attention.h"
#include "model/gpt.h"

namespace aios {

class InferenceScope {
 public:
  InferenceScope(Gpt& model, const MixedPrecision& precision)
      : model_(model),
        was_training_(model->is_training()),
        autocast_(model->wte->weight.device().type(), precision.enabled, precision.dtype) {
    model_->eval();
  }
  ~InferenceScope() {
    if (was_training_) model_->train();
  }
  InferenceScope(const InferenceScope&) = delete;
  InferenceScope& operator=(const InferenceScope&) = delete;

 private:
  torch::NoGradGuard no_grad_;
  Gpt& model_;
  bool was_training_;
  AutocastRegion autocast_;
  CudnnAttentionOff no_cudnn_;
};

}  // namespace aios
