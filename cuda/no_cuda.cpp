// Built instead of the CUDA sources when the build has no nvcc (BRAINPROP_CUDA=OFF).
#include "device_info.h"

namespace bp::cuda {

CudaInventory query_cuda() {
  CudaInventory inv;
  inv.why_no_device = "this build has no CUDA support (configured with BRAINPROP_CUDA=OFF or without nvcc)";
  return inv;
}

}  // namespace bp::cuda
