// Device discovery through the CUDA runtime. Compiled by nvcc in every CUDA-enabled build.
#include <cuda_runtime.h>

#include <string>

#include "core/backend.h"
#include "device_info.h"

namespace bp::cuda {

namespace {

std::string why_unusable(const cudaDeviceProp& prop) {
  const std::string cc = std::to_string(prop.major) + std::to_string(prop.minor);
  if (prop.major < 7)
    return "compute capability " + std::to_string(prop.major) + "." + std::to_string(prop.minor) +
           " is older than the sm_70 the CUDA backend needs";
  if (!archs_cover(BRAINPROP_CUDA_ARCHS, prop.major, prop.minor))
    return "this build has no code for sm_" + cc + " (compiled for " + BRAINPROP_CUDA_ARCHS +
           "; rebuild with -DBRAINPROP_CUDA_ARCHS=" + cc + "-real)";
  return "";
}

}  // namespace

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
    DeviceDescription d;
    d.index = i;
    d.name = prop.name;
    d.major = prop.major;
    d.minor = prop.minor;
    d.total_memory = prop.totalGlobalMem;
    d.multiprocessors = prop.multiProcessorCount;
    d.why_unusable = why_unusable(prop);
    d.usable = d.why_unusable.empty();
    inv.devices.push_back(d);
  }
  return inv;
}

long long pool_used_bytes(int device) {
  int pools = 0;
  cudaMemPool_t pool = nullptr;
  unsigned long long used = 0;  // the attribute is a cuuint64_t
  if (cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, device) != cudaSuccess || !pools ||
      cudaDeviceGetDefaultMemPool(&pool, device) != cudaSuccess ||
      cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &used) != cudaSuccess) {
    cudaGetLastError();
    return -1;
  }
  return static_cast<long long>(used);
}

}  // namespace bp::cuda

namespace bp {

std::vector<GpuInfo> cuda_devices(std::string* why) {
  std::vector<GpuInfo> out;
  std::string reasons;
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess || count == 0) {
    if (why)
      *why = status != cudaSuccess ? std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status)
                                   : "the CUDA runtime found no devices";
    cudaGetLastError();
    return out;
  }
  int previous = 0;
  const bool had_device = cudaGetDevice(&previous) == cudaSuccess;
  for (int i = 0; i < count; ++i) {
    GpuInfo g;
    g.index = i;
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) == cudaSuccess) {
      g.name = prop.name;
      g.total_bytes = prop.totalGlobalMem;
    }
    size_t free_bytes = 0, total_bytes = 0;
    cudaError_t e = cudaSetDevice(i);
    if (e == cudaSuccess) e = cudaMemGetInfo(&free_bytes, &total_bytes);
    if (e == cudaSuccess) {
      g.free_bytes = free_bytes;
      g.total_bytes = total_bytes;
    } else {
      reasons += (reasons.empty() ? "" : "; ") + std::string("device ") + std::to_string(i) +
                 ": free memory unknown (" + cudaGetErrorName(e) + ": " + cudaGetErrorString(e) + ")";
      cudaGetLastError();
    }
    out.push_back(g);
  }
  if (had_device) cudaSetDevice(previous);
  if (why) *why = reasons;
  return out;
}

}  // namespace bp
