// Whether a GPU can run aios's own CUDA kernels. They are compiled for the architectures in
// AIOS_CUDA_ARCHITECTURES (CMakeLists.txt: Ampere, Ada, Hopper, and PTX that later GPUs compile at
// load time); an older GPU has no image of them. Each fused path asks before it launches and takes
// its ATen reference path where the answer is no, so such a GPU trains (slower) rather than
// stopping at the first launch. CUDA builds only.
#pragma once

namespace aios {

// Asked of the driver once per device (a probe kernel of the same build). The first no prints one
// line to stderr naming the GPU and what runs instead.
bool own_kernels_run_on(int device);

// Tests: answer no for every device from now on (true), or ask the driver again (false).
void force_aten_kernels_for_testing(bool force);

}  // namespace aios
