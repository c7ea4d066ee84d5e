// Built instead of cudnn_conv.cu when CMake found no cuDNN: the CUDA backend works for every
// net without shared-weight convolutions, and those say how to get them.
#include "cudnn_conv.h"

namespace bp::cuda {

struct CudnnConvolutions::Plan {};

namespace {
[[noreturn]] void no_cudnn() {
  BP_FAIL("this build has no cuDNN, so conv2d layers cannot run on the GPU: install cuDNN (or "
          "the pip wheel nvidia-cudnn-cu13) and reconfigure with -DCUDNN_ROOT=DIR, or use "
          "--backend cpu");
}
}  // namespace

CudnnConvolutions::CudnnConvolutions(DeviceContext& ctx) : ctx_(ctx) {}
CudnnConvolutions::~CudnnConvolutions() = default;
void CudnnConvolutions::forward(const float*, const float*, float*, const Conv2dGeometry&) { no_cudnn(); }
void CudnnConvolutions::backward_data(const float*, const float*, float*, const Conv2dGeometry&) {
  no_cudnn();
}
void CudnnConvolutions::update(float*, const float*, const float*, const Conv2dGeometry&, float,
                               float) {
  no_cudnn();
}

}  // namespace bp::cuda
