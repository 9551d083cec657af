// MPI for CPU tensors and for host-side agreement (also used by NcclComm). MPI is initialized on
// first use (MPI_THREAD_FUNNELED: only the training thread calls it) and finalized at exit.
#pragma once

#include <mpi.h>

#include "distributed/comm.h"

namespace aios {

void ensure_mpi_initialized();
MPI_Datatype mpi_type_of(const at::Tensor& tensor);

class MpiComm : public Comm {
 public:
  MpiComm();
  std::string describe() const override;
  void all_reduce_sum(at::Tensor& tensor) override;
  void reduce_scatter_sum(const at::Tensor& input, at::Tensor& output) override;
  void all_gather(const at::Tensor& input, at::Tensor& output) override;
  void broadcast(at::Tensor& tensor, int root) override;
  std::int64_t agree_max(std::int64_t value) override;
  double sum_over_ranks(double value) override;
  std::vector<std::int64_t> gather_values(std::int64_t value) override;
  void barrier() override;
};

}  // namespace aios
