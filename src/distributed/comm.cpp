#include "distributed/comm.h"

#include <ATen/ATen.h>

#include <cstdlib>

#include "base/error.h"
#include "distributed/mpi_comm.h"
#if AIOS_WITH_CUDA
#include "distributed/nccl_comm.h"
#endif

namespace aios {
namespace {

// One process: every collective is the identity.
class LocalComm : public Comm {
 public:
  std::string describe() const override { return "local (1 rank)"; }
  void all_reduce_sum(at::Tensor&) override {}
  void reduce_scatter_sum(const at::Tensor& input, at::Tensor& output) override { output.copy_(input); }
  void all_gather(const at::Tensor& input, at::Tensor& output) override { output.copy_(input); }
  void broadcast(at::Tensor&, int) override {}
  std::int64_t agree_max(std::int64_t value) override { return value; }
  double sum_over_ranks(double value) override { return value; }
  std::vector<std::int64_t> gather_values(std::int64_t value) override { return {value}; }
  void barrier() override {}
};

}  // namespace

std::unique_ptr<Comm> make_comm(const c10::Device& device) {
  if (!launched_by_mpi()) return std::make_unique<LocalComm>();
  if (device.is_cuda()) {
#if AIOS_WITH_CUDA
    return std::make_unique<NcclComm>(device);
#else
    throw Error("--device", "CUDA ranks need a build with CUDA and NCCL", "--device cpu");
#endif
  }
  return std::make_unique<MpiComm>();
}

}  // namespace aios
