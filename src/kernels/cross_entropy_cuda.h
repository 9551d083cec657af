// The fused classifier's CUDA kernel: per row of logits, the cross-entropy loss and, in place of
// the logits, its gradient softmax − onehot(target). Plain CUDA (no LibTorch header), so nvcc
// compiles only this file; kernels/cross_entropy.h is the interface the model code calls.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/element_type.h"

namespace aios {

// logits: rows × vocab elements of `type`, row r at logits + r·row_stride (elements); read, then,
// with write_gradient, overwritten with the gradient of the row's loss. targets: rows int64 ids in [0, vocab).
// losses: rows float32, log Σ exp(logits) − logits[target], computed in float32.
// One thread block per row; two reads and one write of each logit (one read without the gradient).
void launch_cross_entropy_rows(void* logits, ElementType type, std::int64_t rows, std::int64_t vocab,
                               std::int64_t row_stride, const std::int64_t* targets, float* losses, bool write_gradient,
                               cudaStream_t stream);

}  // namespace aios
