// Built instead of the CUDA sources when the build has no nvcc (BRAINPROP_CUDA=OFF).
#include "core/backend.h"
#include "device_info.h"

namespace bp {

namespace cuda {
CudaInventory query_cuda() {
  CudaInventory inv;
  inv.why_no_device = "this build has no CUDA support (configured with BRAINPROP_CUDA=OFF or without nvcc)";
  return inv;
}
long long pool_used_bytes(int) { return -1; }
}  // namespace cuda

bool cuda_backend_available(std::string* why) {
  if (why) *why = cuda::query_cuda().why_no_device;
  return false;
}

std::vector<GpuInfo> cuda_devices(std::string* why) {
  if (why) *why = cuda::query_cuda().why_no_device;
  return {};
}

std::unique_ptr<Backend> make_cuda_backend(int, MathMode) {
  BP_FAIL("--backend cuda: " << cuda::query_cuda().why_no_device << "; use --backend cpu");
}

}  // namespace bp
