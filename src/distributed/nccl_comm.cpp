#include "distributed/nccl_comm.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAFunctions.h>

#include <cstdlib>

#include "base/error.h"

namespace aios {
namespace {

void check(ncclResult_t status, const char* what) {
  if (status != ncclSuccess) {
    throw Error("NCCL", std::string(what) + " failed: " + ncclGetErrorString(status) + " (" +
                            (ncclGetLastError(nullptr) ? ncclGetLastError(nullptr) : "") + ")");
  }
}

ncclDataType_t nccl_type_of(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat:
      return ncclFloat32;
    case at::kDouble:
      return ncclFloat64;
    case at::kHalf:
      return ncclFloat16;
    case at::kBFloat16:
      return ncclBfloat16;
    case at::kLong:
      return ncclInt64;
    case at::kInt:
      return ncclInt32;
    case at::kByte:
      return ncclUint8;
    default:
      throw Error("NcclComm", std::string("no NCCL type for ") + c10::toString(t.scalar_type()));
  }
}

// The stream NCCL runs on. set_device comes first, or every rank would open a context on GPU 0.
// High priority: a bucket's collective gets SMs ahead of the backward kernels queued beside it.
c10::cuda::CUDAStream nccl_stream_on(const c10::Device& device) {
  c10::cuda::set_device(device.index());
  return c10::cuda::getStreamFromPool(/*isHighPriority=*/true, device.index());
}

}  // namespace

NcclComm::NcclComm(const c10::Device& device) : device_(device), stream_(nccl_stream_on(device)) {
  rank_ = mpi_.rank(), world_ = mpi_.world(), local_rank_ = mpi_.local_rank();
  ncclUniqueId id;
  if (rank_ == 0) check(ncclGetUniqueId(&id), "ncclGetUniqueId");
  MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, MPI_COMM_WORLD);
  check(ncclCommInitRank(&comm_, world_, id, rank_), "ncclCommInitRank");
}

NcclComm::~NcclComm() {
  if (comm_ != nullptr) ncclCommDestroy(comm_);
}

std::string NcclComm::describe() const {
  int version = 0;
  ncclGetVersion(&version);
  return "nccl " + std::to_string(version / 10000) + "." + std::to_string(version / 100 % 100) + "." +
         std::to_string(version % 100) + " (" + std::to_string(world_) + " ranks)";
}

cudaStream_t NcclComm::start_collective() {
  inputs_ready_.record(at::cuda::getCurrentCUDAStream(device_.index()));
  inputs_ready_.block(stream_);
  return stream_.stream();
}

void NcclComm::end_collective() {
  collectives_done_.record(stream_);
  pending_ = true;
}

void NcclComm::wait_for_collectives() {
  if (!pending_) return;
  collectives_done_.block(at::cuda::getCurrentCUDAStream(device_.index()));
  pending_ = false;
}

void NcclComm::all_reduce_sum_async(at::Tensor& t) {
  check(ncclAllReduce(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()), nccl_type_of(t), ncclSum, comm_,
                      start_collective()),
        "ncclAllReduce");
  end_collective();
}

void NcclComm::reduce_scatter_sum_async(const at::Tensor& input, at::Tensor& output) {
  check(ncclReduceScatter(input.data_ptr(), output.data_ptr(), static_cast<size_t>(output.numel()), nccl_type_of(input),
                          ncclSum, comm_, start_collective()),
        "ncclReduceScatter");
  end_collective();
}

void NcclComm::all_reduce_sum(at::Tensor& t) {
  all_reduce_sum_async(t);
  wait_for_collectives();
}

void NcclComm::reduce_scatter_sum(const at::Tensor& input, at::Tensor& output) {
  reduce_scatter_sum_async(input, output);
  wait_for_collectives();
}

void NcclComm::all_gather(const at::Tensor& input, at::Tensor& output) {
  check(ncclAllGather(input.data_ptr(), output.data_ptr(), static_cast<size_t>(input.numel()), nccl_type_of(input),
                      comm_, start_collective()),
        "ncclAllGather");
  end_collective();
  wait_for_collectives();
}

void NcclComm::broadcast(at::Tensor& t, int root) {
  check(ncclBroadcast(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()), nccl_type_of(t), root, comm_,
                      start_collective()),
        "ncclBroadcast");
  end_collective();
  wait_for_collectives();
}

}  // namespace aios
