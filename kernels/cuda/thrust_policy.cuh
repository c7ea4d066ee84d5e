// The Thrust execution policy for work ordered on `stream`: CUDA's on the device; in the
// emulated-device build, Thrust's CPP system on the host, after the stream's queued work (the
// algorithm then runs where the stream has got to, as on the device).
#pragma once
#include <cuda_runtime.h>
#include <thrust/execution_policy.h>

namespace bp::cuda {

#if defined(BRAINPROP_CUDA_EMULATOR)
inline auto thrust_on(cudaStream_t stream) {
  cudaStreamSynchronize(stream);
  return thrust::cpp::par;
}
#else
inline auto thrust_on(cudaStream_t stream) { return thrust::cuda::par.on(stream); }
#endif

}  // namespace bp::cuda
