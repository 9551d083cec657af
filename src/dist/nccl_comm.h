// NCCL for CUDA tensors, bootstrapped by MPI: rank 0 creates the unique id, MPI broadcasts it,
// every rank joins on its own GPU (cuda:local_rank). Collectives run on the current CUDA stream,
// so they are ordered with the compute that produced their inputs. Host-side agreement and
// aborts go through MPI. Compiled only when LibTorch has CUDA.
#pragma once

#include <nccl.h>

#include "dist/mpi_comm.h"

namespace aios {

class NcclComm : public Comm {
 public:
  explicit NcclComm(const c10::Device& device);
  ~NcclComm() override;
  std::string describe() const override;
  void all_reduce_sum(at::Tensor& tensor) override;
  void reduce_scatter_sum(const at::Tensor& input, at::Tensor& output) override;
  void all_gather(const at::Tensor& input, at::Tensor& output) override;
  void broadcast(at::Tensor& tensor, int root) override;
  std::int64_t agree_max(std::int64_t value) override { return mpi_.agree_max(value); }
  double sum_over_ranks(double value) override { return mpi_.sum_over_ranks(value); }
  std::vector<std::int64_t> gather_values(std::int64_t value) override { return mpi_.gather_values(value); }
  void barrier() override { mpi_.barrier(); }
  [[noreturn]] void abort_job(int code) override;

 private:
  MpiComm mpi_;
  ncclComm_t comm_ = nullptr;
  c10::Device device_;
};

}  // namespace aios
