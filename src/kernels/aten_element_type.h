// The kernels' element type of an ATen scalar type (for the .cpp files that launch CUDA kernels).
#pragma once

#include <c10/core/ScalarType.h>

#include "kernels/element_type.h"

namespace aios {

inline ElementType element_type_of(c10::ScalarType type) {
  return type == c10::kBFloat16 ? ElementType::kBFloat16
         : type == c10::kHalf   ? ElementType::kFloat16
                                : ElementType::kFloat32;
}

}  // namespace aios
