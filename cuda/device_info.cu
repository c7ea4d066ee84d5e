// Device discovery through the CUDA runtime. Compiled by nvcc in every CUDA-enabled build.
#include <cuda_runtime.h>

#include "device_info.h"

namespace bp::cuda {

CudaInventory query_cuda() {
  CudaInventory inv;
  inv.compiled = true;
  inv.compiled_archs = BRAINPROP_CUDA_ARCHS;
  cudaRuntimeGetVersion(&inv.runtime_version);
  if (cudaDriverGetVersion(&inv.driver_version) != cudaSuccess) inv.driver_version = 0;
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    inv.why_no_device = std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status);
    cudaGetLastError();  // clear the sticky error so later calls start clean
    return inv;
  }
  if (count == 0) inv.why_no_device = "the CUDA runtime found no devices";
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    inv.devices.push_back(DeviceDescription{i, prop.name, prop.major, prop.minor,
                                            prop.totalGlobalMem, prop.multiProcessorCount});
  }
  return inv;
}

}  // namespace bp::cuda
