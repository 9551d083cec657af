#include <mpi.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <string>

#include "cli/app.h"
#include "data/tokenizer.h"

#if AIOS_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <nccl.h>
#endif

namespace aios::cli {

std::string version_report() {
  std::string report = "aios " AIOS_VERSION "\n";
  report += "LibTorch " + std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
            std::to_string(TORCH_VERSION_PATCH);
#if AIOS_WITH_CUDA
  report += " (CUDA build)\n";
  const bool cuda = torch::cuda::is_available();
  report += "CUDA: compiled in; " +
            (cuda ? std::to_string(torch::cuda::device_count()) + " device(s)" : std::string("no device available"));
  if (cuda) report += ", device 0: " + std::string(at::cuda::getDeviceProperties(0)->name);
  int nccl = 0;
  ncclGetVersion(&nccl);
  report += "\nNCCL: " + std::to_string(nccl / 10000) + "." + std::to_string(nccl / 100 % 100) + "." +
            std::to_string(nccl % 100) + "\n";
#else
  report += " (CPU build)\nCUDA: not compiled in (LibTorch has no CUDA)\nNCCL: not compiled in\n";
#endif
  char mpi[MPI_MAX_LIBRARY_VERSION_STRING];
  int length = 0;
  MPI_Get_library_version(mpi, &length);
  std::string mpi_text(mpi, static_cast<std::size_t>(length));
  report += "MPI: " + mpi_text.substr(0, mpi_text.find_first_of(",\n")) + "\n";
  report += "HDF5: " AIOS_HDF5_VERSION "\n";
  report += std::string("SentencePiece: ") + (sentencepiece_available() ? "yes" : "not compiled in");
  return report;
}

}  // namespace aios::cli
