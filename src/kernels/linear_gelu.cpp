#include "kernels/linear_gelu.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "kernels/bias_gradient.h"
#include "kernels/linear.h"

#if AIOS_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <cublasLt.h>

#include <map>
#include <mutex>
#include <optional>
#include <tuple>

#include "kernels/cuda_images.h"
#endif

namespace aios {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

#if AIOS_WITH_CUDA
void check(cublasStatus_t status, const char* what) {
  TORCH_CHECK(status == CUBLAS_STATUS_SUCCESS, "aios: ", what, " failed: ", cublasGetStatusString(status));
}

bool aligned(const at::Tensor& t) { return reinterpret_cast<std::uintptr_t>(t.data_ptr()) % 16 == 0; }

// One matmul's cuBLASLt descriptors, destroyed with it.
struct LtMatmul {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  ~LtMatmul() {
    if (d) cublasLtMatrixLayoutDestroy(d);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

// The algorithm cuBLASLt's heuristic picks for a shape, asked once per device, shape and type
// (the host call costs more than the eager step can spare); nullopt where it offers none.
std::optional<cublasLtMatmulAlgo_t> algorithm_for(const LtMatmul& m, int device, std::int64_t rows, std::int64_t in,
                                                  std::int64_t out, cudaDataType_t type, std::size_t workspace) {
  using Key = std::tuple<int, std::int64_t, std::int64_t, std::int64_t, int>;
  static std::mutex mutex;
  static std::map<Key, std::optional<cublasLtMatmulAlgo_t>> chosen;
  const Key key{device, rows, in, out, static_cast<int>(type)};
  const std::lock_guard lock(mutex);
  if (auto it = chosen.find(key); it != chosen.end()) return it->second;
  cublasLtMatmulPreference_t preference = nullptr;
  check(cublasLtMatmulPreferenceCreate(&preference), "cublasLtMatmulPreferenceCreate");
  check(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                                             sizeof(workspace)),
        "cublasLtMatmulPreferenceSetAttribute");
  // Every pointer is only promised 16-byte alignment (the default promise is 256).
  const std::uint32_t alignment = 16;
  for (const auto attribute :
       {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES}) {
    check(cublasLtMatmulPreferenceSetAttribute(preference, attribute, &alignment, sizeof(alignment)),
          "cublasLtMatmulPreferenceSetAttribute");
  }
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(at::cuda::getCurrentCUDABlasLtHandle(), m.op, m.a, m.b,
                                                               m.d, m.d, preference, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(preference);
  std::optional<cublasLtMatmulAlgo_t> algorithm;
  if (status == CUBLAS_STATUS_SUCCESS && found > 0) algorithm = result.algo;
  chosen.emplace(key, algorithm);
  return algorithm;
}

// pre = x·Wᵀ + b and out = gelu(pre) from one cuBLASLt matmul whose epilogue adds the bias, writes
// pre (its "auxiliary" output, what the backward reads) and applies GELU to the float32 sum: the
// GELU kernel's pass over pre is gone, and out is rounded once instead of twice. cuBLASLt's GELU
// epilogue is the tanh approximation, GPT-2's. False (nothing written) where the types, shapes or
// alignment do not fit or cuBLASLt has no algorithm; the caller then runs the two apart.
bool gelu_epilogue(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, at::Tensor& pre, at::Tensor& out) {
  const auto type = x.scalar_type();
  if (!x.is_cuda() || (type != at::kBFloat16 && type != at::kHalf) || w.scalar_type() != type ||
      b.scalar_type() != type || !x.is_contiguous() || !w.is_contiguous() || !b.is_contiguous() || x.dim() != 2 ||
      x.size(0) == 0 || x.size(1) % 8 != 0 || w.size(0) % 8 != 0 || !aligned(x) || !aligned(w) || !aligned(b) ||
      !own_kernels_run_on(x.device().index())) {  // the tests' switch to the reference paths
    return false;
  }
  const std::int64_t rows = x.size(0), in = x.size(1), width = w.size(0);
  const cudaDataType_t data = type == at::kBFloat16 ? CUDA_R_16BF : CUDA_R_16F;
  // Column-major, as cuBLASLt sees row-major tensors: outᵀ [width, rows] = W [width, in] (stored as
  // Wᵀ, transposed) · xᵀ [in, rows]; the bias runs along outᵀ's rows.
  LtMatmul m;
  check(cublasLtMatmulDescCreate(&m.op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
  const cublasOperation_t transpose = CUBLAS_OP_T, keep = CUBLAS_OP_N;
  const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
  const std::int64_t aux_ld = width;
  check(cublasLtMatmulDescSetAttribute(m.op, CUBLASLT_MATMUL_DESC_TRANSA, &transpose, sizeof(transpose)), "TRANSA");
  check(cublasLtMatmulDescSetAttribute(m.op, CUBLASLT_MATMUL_DESC_TRANSB, &keep, sizeof(keep)), "TRANSB");
  check(cublasLtMatmulDescSetAttribute(m.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)), "EPILOGUE");
  check(cublasLtMatmulDescSetAttribute(m.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &data, sizeof(data)), "BIAS_TYPE");
  check(cublasLtMatmulDescSetAttribute(m.op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld, sizeof(aux_ld)), "AUX_LD");
  check(cublasLtMatrixLayoutCreate(&m.a, data, in, width, in), "cublasLtMatrixLayoutCreate");
  check(cublasLtMatrixLayoutCreate(&m.b, data, in, rows, in), "cublasLtMatrixLayoutCreate");
  check(cublasLtMatrixLayoutCreate(&m.d, data, width, rows, width), "cublasLtMatrixLayoutCreate");
  const std::size_t workspace_size = at::cuda::getCUDABlasLtWorkspaceSize();
  const auto algorithm = algorithm_for(m, x.device().index(), rows, in, width, data, workspace_size);
  if (!algorithm) return false;
  pre = at::empty({rows, width}, x.options());
  out = at::empty({rows, width}, x.options());
  const void* bias = b.data_ptr();
  void* aux = pre.data_ptr();
  check(cublasLtMatmulDescSetAttribute(m.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)), "BIAS_POINTER");
  check(cublasLtMatmulDescSetAttribute(m.op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof(aux)),
        "AUX_POINTER");
  const float alpha = 1.f, beta = 0.f;
  check(cublasLtMatmul(at::cuda::getCurrentCUDABlasLtHandle(), m.op, &alpha, w.data_ptr(), m.a, x.data_ptr(), m.b,
                       &beta, out.data_ptr(), m.d, out.data_ptr(), m.d, &*algorithm, at::cuda::getCUDABlasLtWorkspace(),
                       workspace_size, at::cuda::getCurrentCUDAStream(x.device().index()).stream()),
        "cublasLtMatmul (linear + GELU epilogue)");
  return true;
}
#endif

struct LinearGelu : public torch::autograd::Function<LinearGelu> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                               const at::Tensor& bias) {
    const at::ScalarType type = matmul_type(x);
    const auto xc = x.to(type), wc = weight.to(type), bc = bias.to(type);
    at::Tensor pre, out;
#if AIOS_WITH_CUDA
    if (gelu_epilogue(xc.reshape({-1, x.size(-1)}), wc, bc, pre, out)) {
      auto shape = x.sizes().vec();
      shape.back() = weight.size(0);
      pre = pre.view(shape);
      out = out.view(shape);
    }
#endif
    if (!out.defined()) {
      pre = at::linear(xc, wc, bc);
      out = at::gelu(pre, "tanh");
    }
    ctx->save_for_backward({xc, wc, pre});
    ctx->saved_data["input_type"] = x.scalar_type();
    ctx->saved_data["weight_type"] = weight.scalar_type();
    ctx->saved_data["bias_type"] = bias.scalar_type();
    return {out};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &w = saved[1], &pre = saved[2];
    const auto out = w.size(0);
    const auto grad_h = grad_outputs[0].to(pre.scalar_type()).reshape({-1, out}).contiguous();
    const auto [grad_pre, grad_bias] = gelu_backward_and_bias_gradient(grad_h, pre.reshape({-1, out}).contiguous(),
                                                                       ctx->saved_data["bias_type"].toScalarType());
    variable_list grads(3);
    if (ctx->needs_input_grad(0)) {
      grads[0] = at::mm(grad_pre, w).view(x.sizes()).to(ctx->saved_data["input_type"].toScalarType());
    }
    if (ctx->needs_input_grad(1)) {
      grads[1] =
          linear_weight_gradient(grad_pre, x.reshape({-1, x.size(-1)}), ctx->saved_data["weight_type"].toScalarType());
    }
    if (ctx->needs_input_grad(2)) grads[2] = grad_bias;
    return grads;
  }
};

}  // namespace

at::Tensor linear_gelu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  return LinearGelu::apply(x, weight, bias)[0];
}

}  // namespace aios
