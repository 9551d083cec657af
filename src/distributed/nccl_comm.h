// NCCL for CUDA tensors, bootstrapped by MPI: rank 0 creates the unique id, MPI broadcasts it,
// every rank joins on its own GPU (cuda:local_rank). Collectives run on a dedicated stream: each
// first waits (an event) for the work already queued on the current stream, which produced its
// input, so compute issued after it (the rest of the backward) runs beside it. The blocking
// collectives then make the current stream wait for it; the _async ones leave that to
// wait_for_collectives(). Host-side agreement and aborts go through MPI. Compiled only when
// LibTorch has CUDA.
#pragma once

#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAStream.h>
#include <nccl.h>

#include "distributed/mpi_comm.h"

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
  void all_reduce_sum_async(at::Tensor& tensor) override;
  void reduce_scatter_sum_async(const at::Tensor& input, at::Tensor& output) override;
  void wait_for_collectives() override;
  std::int64_t agree_max(std::int64_t value) override { return mpi_.agree_max(value); }
  double sum_over_ranks(double value) override { return mpi_.sum_over_ranks(value); }
  std::vector<std::int64_t> gather_values(std::int64_t value) override { return mpi_.gather_values(value); }
  void barrier() override { mpi_.barrier(); }

 private:
  MpiComm mpi_;
  ncclComm_t comm_ = nullptr;
  c10::Device device_;
  cudaStream_t start_collective();  // the NCCL stream, after the current stream's queued work
  void end_collective();
  c10::cuda::CUDAStream stream_;
  at::cuda::CUDAEvent inputs_ready_, collectives_done_;
  bool pending_ = false;  // a collective was issued since the last wait_for_collectives
};

}  // namespace aios
