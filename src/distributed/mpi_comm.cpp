#include "distributed/mpi_comm.h"

#include <ATen/ATen.h>

#include <cstdlib>

#include "base/error.h"

namespace aios {
namespace {

void check(int status, const char* what) {
  if (status != MPI_SUCCESS) {
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    MPI_Error_string(status, text, &length);
    throw Error("MPI", std::string(what) + " failed: " + std::string(text, static_cast<std::size_t>(length)));
  }
}

void check_cpu(const at::Tensor& t, const char* what) {
  if (!t.is_cpu() || !t.is_contiguous()) {
    throw Error("MpiComm", std::string(what) + " needs contiguous CPU tensors");
  }
}

void finalize_mpi() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

}  // namespace

bool launched_by_mpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK", "MV2_COMM_WORLD_SIZE"}) {
    if (std::getenv(name) != nullptr) return true;
  }
  return false;
}

void ensure_mpi_initialized() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) return;
  int provided = 0;
  check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  // Errors come back as codes, so they become aios::Error with a message instead of a silent abort.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  std::atexit(finalize_mpi);
}

RankInfo mpi_rank_info() {
  RankInfo info;
  if (!launched_by_mpi()) return info;
  ensure_mpi_initialized();
  MPI_Comm_rank(MPI_COMM_WORLD, &info.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &info.world);
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, info.rank, MPI_INFO_NULL, &local);
  MPI_Comm_rank(local, &info.local_rank);
  MPI_Comm_free(&local);
  return info;
}

MPI_Datatype mpi_type_of(const at::Tensor& tensor) {
  switch (tensor.scalar_type()) {
    case at::kFloat:
      return MPI_FLOAT;
    case at::kDouble:
      return MPI_DOUBLE;
    case at::kLong:
      return MPI_INT64_T;
    case at::kInt:
      return MPI_INT32_T;
    case at::kByte:
      return MPI_UINT8_T;
    default:
      throw Error("MpiComm", std::string("no MPI type for ") + c10::toString(tensor.scalar_type()),
                  "float32, float64, int32, int64 or uint8 tensors");
  }
}

MpiComm::MpiComm() {
  const RankInfo info = mpi_rank_info();
  rank_ = info.rank, world_ = info.world, local_rank_ = info.local_rank;
}

std::string MpiComm::describe() const { return "mpi (" + std::to_string(world_) + " ranks)"; }

void MpiComm::all_reduce_sum(at::Tensor& tensor) {
  check_cpu(tensor, "all_reduce_sum");
  check(MPI_Allreduce(MPI_IN_PLACE, tensor.data_ptr(), static_cast<int>(tensor.numel()), mpi_type_of(tensor), MPI_SUM,
                      MPI_COMM_WORLD),
        "MPI_Allreduce");
}

void MpiComm::reduce_scatter_sum(const at::Tensor& input, at::Tensor& output) {
  check_cpu(input, "reduce_scatter_sum");
  check_cpu(output, "reduce_scatter_sum");
  check(MPI_Reduce_scatter_block(input.data_ptr(), output.data_ptr(), static_cast<int>(output.numel()),
                                 mpi_type_of(input), MPI_SUM, MPI_COMM_WORLD),
        "MPI_Reduce_scatter_block");
}

void MpiComm::all_gather(const at::Tensor& input, at::Tensor& output) {
  check_cpu(input, "all_gather");
  check_cpu(output, "all_gather");
  check(MPI_Allgather(input.data_ptr(), static_cast<int>(input.numel()), mpi_type_of(input), output.data_ptr(),
                      static_cast<int>(input.numel()), mpi_type_of(output), MPI_COMM_WORLD),
        "MPI_Allgather");
}

void MpiComm::broadcast(at::Tensor& tensor, int root) {
  check_cpu(tensor, "broadcast");
  check(MPI_Bcast(tensor.data_ptr(), static_cast<int>(tensor.numel()), mpi_type_of(tensor), root, MPI_COMM_WORLD),
        "MPI_Bcast");
}

std::int64_t MpiComm::agree_max(std::int64_t value) {
  std::int64_t result = value;
  check(MPI_Allreduce(&value, &result, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce (agree)");
  return result;
}

double MpiComm::sum_over_ranks(double value) {
  double result = value;
  check(MPI_Allreduce(&value, &result, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce (sum)");
  return result;
}

std::vector<std::int64_t> MpiComm::gather_values(std::int64_t value) {
  std::vector<std::int64_t> values(static_cast<std::size_t>(world_));
  check(MPI_Allgather(&value, 1, MPI_INT64_T, values.data(), 1, MPI_INT64_T, MPI_COMM_WORLD), "MPI_Allgather");
  return values;
}

void MpiComm::barrier() { check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }

}  // namespace aios
