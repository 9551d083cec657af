// The collectives a data-parallel step needs, whatever carries them: NCCL for CUDA tensors
// (NcclComm), MPI for CPU tensors (MpiComm, so every distributed path runs in CPU tests under
// `mpirun`), or nothing for one process (LocalComm). Every rank must enter every collective in the
// same order; anything that can fail on one rank is first
// turned into a flag all ranks `agree` on through a small MPI all-reduce.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace aios {

class Comm {
 public:
  virtual ~Comm() = default;

  int rank() const { return rank_; }
  int world() const { return world_; }
  int local_rank() const { return local_rank_; }  // index among the ranks on this host: picks the GPU
  virtual std::string describe() const = 0;       // "local", "mpi (3 ranks)", "nccl 2.28.3 (8 ranks)"

  // Tensor collectives; contiguous tensors on the device this Comm serves, same dtype on all ranks.
  virtual void all_reduce_sum(at::Tensor& tensor) = 0;  // in place
  // input: [world · n] rank-major; output: [n] = the sum over ranks of input's slice `rank`.
  virtual void reduce_scatter_sum(const at::Tensor& input, at::Tensor& output) = 0;
  // input: [n]; output: [world · n], rank r's input at r·n.
  virtual void all_gather(const at::Tensor& input, at::Tensor& output) = 0;
  virtual void broadcast(at::Tensor& tensor, int root) = 0;

  // Overlapped variants for gradient buckets: they may still be running when they return (NCCL
  // runs them on its own stream, after the work already queued on the current one); the caller
  // keeps input and output alive and unchanged until wait_for_collectives(), which makes the
  // current stream wait for every collective issued so far. MPI and one process finish in the
  // call, so by default these are the blocking collectives above.
  virtual void all_reduce_sum_async(at::Tensor& tensor) { all_reduce_sum(tensor); }
  virtual void reduce_scatter_sum_async(const at::Tensor& input, at::Tensor& output) {
    reduce_scatter_sum(input, output);
  }
  virtual void wait_for_collectives() {}

  // Host-side agreement (MPI, also under NCCL): the maximum / sum of `value` over ranks. Cheap,
  // blocking, and the only thing a rank that hit an error may enter before the others know.
  virtual std::int64_t agree_max(std::int64_t value) = 0;
  virtual double sum_over_ranks(double value) = 0;
  virtual std::vector<std::int64_t> gather_values(std::int64_t value) = 0;  // every rank's value, by rank
  virtual void barrier() = 0;

 protected:
  int rank_ = 0, world_ = 1, local_rank_ = 0;
};

// True when this process was started by mpirun/srun (Open MPI, PMIx or PMI variables present).
bool launched_by_mpi();

// The Comm for this process: LocalComm when not launched by MPI; otherwise MpiComm for the CPU,
// or NcclComm for CUDA (initialized on `device`, which must be cuda:local_rank). MPI is
// initialized once per process and finalized at exit.
std::unique_ptr<Comm> make_comm(const c10::Device& device);

// Rank and local rank from MPI without building a Comm (to pick the GPU before CUDA starts).
struct RankInfo {
  int rank = 0, world = 1, local_rank = 0;
};
RankInfo mpi_rank_info();

}  // namespace aios
