// One GPU as the CUDA backend uses it: the stream every op is ordered on, the cuBLAS and
// cuDNN handles bound to it, stream-ordered memory (a pool, so steady-state steps never call
// the driver's allocator), a growable workspace for cuDNN and reductions, and the state of a
// graph capture. Tensors keep the context alive until their memory is returned.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#if defined(BRAINPROP_HAVE_CUDNN)
#include <cudnn.h>
#endif

#include <cstdint>
#include <string>
#include <vector>

#include "core/backend.h"

namespace bp::cuda {

class DeviceContext {
 public:
  DeviceContext(int device, MathMode math);
  ~DeviceContext();
  DeviceContext(const DeviceContext&) = delete;
  DeviceContext& operator=(const DeviceContext&) = delete;

  int device() const { return device_; }
  const std::string& device_name() const { return device_name_; }
  int sm_count() const { return sm_count_; }
  MathMode math() const { return math_; }
  bool memory_pools() const { return memory_pools_; }  // stream-ordered allocation in use
  cudaStream_t stream() const { return stream_; }
  cublasHandle_t cublas() const { return cublas_; }
#if defined(BRAINPROP_HAVE_CUDNN)
  cudnnHandle_t cudnn();  // created on first use (loading cuDNN takes a while)
#endif

  // Stream-ordered allocation; out of memory throws with the request and what is free.
  void* allocate(size_t bytes, const std::string& what);
  void release(void* ptr) noexcept;
  // Scratch of at least `bytes`, shared by consecutive ops on the stream. Grows outside a
  // capture only (a capture that needs more fails with the reason); outgrown buffers stay
  // allocated until the context goes, since recorded graphs may use them.
  void* workspace(size_t bytes);

  // Graph capture: while capturing, ops that take per-step arguments read the replay offsets
  // (device int64[2]: batches ahead, steps ahead) instead of using their arguments as they are.
  bool capturing() const { return capturing_; }
  void set_capturing(bool on) { capturing_ = on; }
  const int64_t* replay_offsets() const { return capturing_ ? offsets_ : nullptr; }
  int64_t* replay_offsets_storage() { return offsets_; }

  // "NVIDIA H200: 12.5 GiB free of 139.8 GiB"
  std::string memory_report() const;

 private:
  int device_ = 0;
  std::string device_name_;
  int sm_count_ = 0;
  MathMode math_ = MathMode::FP32;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
#if defined(BRAINPROP_HAVE_CUDNN)
  cudnnHandle_t cudnn_ = nullptr;
#endif
  void* cublas_workspace_ = nullptr;
  void* workspace_ = nullptr;
  std::vector<void*> retired_;  // outgrown workspaces, kept for graphs that captured them
  size_t workspace_bytes_ = 0;
  int64_t* offsets_ = nullptr;
  bool capturing_ = false;
  bool memory_pools_ = true;
};

}  // namespace bp::cuda
