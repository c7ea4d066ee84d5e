#include "device_context.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "cuda_check.h"

namespace bp::cuda {

namespace {
// cuBLAS takes a user workspace so that its GEMMs never allocate while a graph is captured.
constexpr size_t kCublasWorkspaceBytes = size_t(32) << 20;

std::string mib(size_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MiB", double(bytes) / (1 << 20));
  return text;
}
}  // namespace

DeviceContext::DeviceContext(int device, MathMode math) : device_(device), math_(math) {
  int count = 0;
  BP_CUDA_CHECK(cudaGetDeviceCount(&count));
  BP_CHECK(device >= 0 && device < count,
           "CUDA device " << device << " does not exist (" << count << " found)");
  BP_CUDA_CHECK(cudaSetDevice(device));
  cudaDeviceProp prop{};
  BP_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  device_name_ = prop.name;
  sm_count_ = prop.multiProcessorCount;
  BP_CHECK(prop.major >= 7, device_name_ << " (sm_" << prop.major << prop.minor
                                         << ") is too old: the CUDA backend needs sm_70 or newer");
  BP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  // Keep freed blocks in the pool: steps reuse them instead of returning to the driver. Some
  // devices and virtualised drivers have no stream-ordered allocator: plain allocations then.
  int pools = 0;
  BP_CUDA_CHECK(cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, device));
  memory_pools_ = pools != 0;
  if (memory_pools_) {
    cudaMemPool_t pool = nullptr;
    BP_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
    uint64_t keep_all = UINT64_MAX;
    BP_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep_all));
  } else {
    std::fprintf(stderr, "brainprop: note: %s has no memory pools (cudaDevAttrMemoryPoolsSupported "
                         "is 0): using cudaMalloc/cudaFree, which synchronise on each free\n",
                 device_name_.c_str());
  }

  BP_CUBLAS_CHECK(cublasCreate(&cublas_));
  BP_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
  cublas_workspace_ = allocate(kCublasWorkspaceBytes, "cuBLAS workspace");
  BP_CUBLAS_CHECK(cublasSetWorkspace(cublas_, cublas_workspace_, kCublasWorkspaceBytes));
  BP_CUBLAS_CHECK(cublasSetMathMode(
      cublas_, math == MathMode::TF32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  offsets_ = static_cast<int64_t*>(allocate(2 * sizeof(int64_t), "graph replay offsets"));
  BP_CUDA_CHECK(cudaMemsetAsync(offsets_, 0, 2 * sizeof(int64_t), stream_));
}

DeviceContext::~DeviceContext() {
  // Errors cannot be thrown from here; a failing teardown is ignored. The handles go first
  // (cuBLAS owns a pointer to its workspace), then the memory, then the stream it is freed on.
  if (stream_) cudaStreamSynchronize(stream_);
#if defined(BRAINPROP_HAVE_CUDNN)
  if (cudnn_) cudnnDestroy(cudnn_);
#endif
  if (cublas_) cublasDestroy(cublas_);
  release(offsets_);
  release(workspace_);
  for (void* old : retired_) release(old);
  release(cublas_workspace_);
  if (stream_) {
    cudaStreamSynchronize(stream_);
    cudaStreamDestroy(stream_);
  }
}

#if defined(BRAINPROP_HAVE_CUDNN)
cudnnHandle_t DeviceContext::cudnn() {
  if (!cudnn_) {
    BP_CHECK(!capturing_, "cuDNN was first used inside a graph capture; run the step once first");
    BP_CUDNN_CHECK(cudnnCreate(&cudnn_));
    BP_CUDNN_CHECK(cudnnSetStream(cudnn_, stream_));
  }
  return cudnn_;
}
#endif

void* DeviceContext::allocate(size_t bytes, const std::string& what) {
  if (bytes == 0) return nullptr;
  BP_CHECK(!capturing_, "allocating " << what << " inside a graph capture");
  void* ptr = nullptr;
  const cudaError_t status =
      memory_pools_ ? cudaMallocAsync(&ptr, bytes, stream_) : cudaMalloc(&ptr, bytes);
  if (status == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    BP_FAIL("out of GPU memory: " << what << " needs " << mib(bytes) << "; " << memory_report()
                                  << " (try a smaller --batch, or free the GPU of other jobs)");
  }
  BP_CUDA_CHECK(status);
  return ptr;
}

void DeviceContext::release(void* ptr) noexcept {
  if (!ptr) return;
  const cudaError_t status = memory_pools_ ? cudaFreeAsync(ptr, stream_) : cudaFree(ptr);
  if (status != cudaSuccess) {
    std::fprintf(stderr, "brainprop: freeing GPU memory failed: %s\n", cudaGetErrorString(status));
    cudaGetLastError();
  }
}

void* DeviceContext::workspace(size_t bytes) {
  if (bytes <= workspace_bytes_) return workspace_;
  BP_CHECK(!capturing_, "a step needs " << mib(bytes) << " of workspace inside a graph capture, "
                                        << "more than the " << mib(workspace_bytes_)
                                        << " its plain run sized");
  // The old buffer is retired, not freed: a captured graph may still point at it.
  const size_t grown = std::max(bytes, 2 * workspace_bytes_);
  void* fresh = allocate(grown, "workspace");
  if (workspace_) retired_.push_back(workspace_);
  workspace_ = fresh;
  workspace_bytes_ = grown;
  return workspace_;
}

std::string DeviceContext::memory_report() const {
  size_t free_bytes = 0, total_bytes = 0;
  if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) {
    cudaGetLastError();
    return device_name_ + ": free memory unknown";
  }
  std::ostringstream out;
  out << device_name_ << ": " << mib(free_bytes) << " free of " << mib(total_bytes);
  return out.str();
}

}  // namespace bp::cuda
