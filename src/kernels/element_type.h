// The element types aios's CUDA kernels read and write, named without CUDA or LibTorch headers so
// that plain-CUDA kernel interfaces and their ATen-side callers share them.
#pragma once

namespace aios {

enum class ElementType { kFloat32, kBFloat16, kFloat16 };

}  // namespace aios
