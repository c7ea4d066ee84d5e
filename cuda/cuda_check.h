// Error checks for the CUDA runtime, cuBLAS and cuDNN: a failed call throws bp::Error naming
// the call, the library's own message, and the file and line.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#if defined(BRAINPROP_HAVE_CUDNN)
#include <cudnn.h>
#endif

#include "core/error.h"

namespace bp::cuda {

[[noreturn]] void fail_cuda(const char* call, cudaError_t status, const char* file, int line);
[[noreturn]] void fail_cublas(const char* call, cublasStatus_t status, const char* file, int line);
#if defined(BRAINPROP_HAVE_CUDNN)
[[noreturn]] void fail_cudnn(const char* call, cudnnStatus_t status, const char* file, int line);
#endif

}  // namespace bp::cuda

#define BP_CUDA_CHECK(call)                                                            \
  do {                                                                                 \
    const cudaError_t bp_status_ = (call);                                             \
    if (bp_status_ != cudaSuccess) ::bp::cuda::fail_cuda(#call, bp_status_, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: catches bad launch configurations at the launch site.
#define BP_CUDA_CHECK_LAUNCH(kernel_name) BP_CUDA_CHECK(cudaPeekAtLastError())

#define BP_CUBLAS_CHECK(call)                                                              \
  do {                                                                                     \
    const cublasStatus_t bp_status_ = (call);                                              \
    if (bp_status_ != CUBLAS_STATUS_SUCCESS)                                               \
      ::bp::cuda::fail_cublas(#call, bp_status_, __FILE__, __LINE__);                      \
  } while (0)

#if defined(BRAINPROP_HAVE_CUDNN)
#define BP_CUDNN_CHECK(call)                                                               \
  do {                                                                                     \
    const cudnnStatus_t bp_status_ = (call);                                               \
    if (bp_status_ != CUDNN_STATUS_SUCCESS)                                                \
      ::bp::cuda::fail_cudnn(#call, bp_status_, __FILE__, __LINE__);                       \
  } while (0)
#endif
