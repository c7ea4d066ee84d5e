#include <sstream>

#include "cuda_check.h"

namespace bp::cuda {

void fail_cuda(const char* call, cudaError_t status, const char* file, int line) {
  cudaGetLastError();  // clear a non-sticky error so the caller may recover
  std::ostringstream msg;
  msg << call << " failed: " << cudaGetErrorName(status) << ": " << cudaGetErrorString(status);
  ::bp::detail::throw_error(file, line, msg.str());
}

void fail_cublas(const char* call, cublasStatus_t status, const char* file, int line) {
  std::ostringstream msg;
  msg << call << " failed: " << cublasGetStatusName(status) << ": " << cublasGetStatusString(status);
  ::bp::detail::throw_error(file, line, msg.str());
}

#if defined(BRAINPROP_HAVE_CUDNN)
void fail_cudnn(const char* call, cudnnStatus_t status, const char* file, int line) {
  char detail[512] = {0};
  cudnnGetLastErrorString(detail, sizeof detail);
  std::ostringstream msg;
  msg << call << " failed: " << cudnnGetErrorString(status);
  if (detail[0]) msg << " (" << detail << ")";
  ::bp::detail::throw_error(file, line, msg.str());
}
#endif

}  // namespace bp::cuda
