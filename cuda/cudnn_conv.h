// Shared-weight 2-D convolutions through cuDNN (NHWC activations, weights [out_c, kh, kw, in_c]
// = cuDNN's NHWC filter layout). Descriptors and the chosen algorithms are cached per shape;
// workspaces are bounded (kMaxWorkspaceBytes) and come from the device context. The update
// runs backward-filter with alpha = -step and beta = decay straight into the weights (nothing
// reads W in that call, so the aliasing is legal): no gradient buffer.
//
// Padding. cuDNN pads symmetrically: pad_top rows above and below, pad_left columns left and
// right. TF's 'same' puts the odd pixel of an odd total padding at the bottom/right (e.g. in 32,
// kernel 3, stride 2: out 16, pad 0 on top and 1 at the bottom), and there symmetric padding
// pad_top yields one output row fewer than TF. Such geometries run on a copy of x with the
// missing zero rows/columns appended below/right (it lives in the context workspace next to
// cuDNN's scratch): forward and update read the copy, backward data writes the gradient of the
// copy and crops it to dx. Every window then reads exactly the pixels TF's does (the appended
// pixels and cuDNN's own padding are zeros), so all three ops match the CPU reference.
// Geometries that symmetric padding reproduces ('valid', 'same' with an even total) run on x
// directly.
//
// Algorithms come from cuDNN's heuristics (no benchmarking, nothing runs): the first one that
// is supported, fits kMaxWorkspaceBytes and uses the context's math (FP32: FMA only, no TF32
// tensor cores; TF32: tensor cores allowed), deterministic ones first for backward data and
// filter so runs repeat bit for bit. Plans are made on the first call for a geometry, which
// must come before any graph capture (a capture without a plan throws).
#pragma once
#include <map>
#include <memory>
#include <tuple>

#include "device_context.h"
#include "math/conv_geometry.h"

namespace bp::cuda {

class CudnnConvolutions {
 public:
  static constexpr size_t kMaxWorkspaceBytes = size_t(512) << 20;

  explicit CudnnConvolutions(DeviceContext& ctx);
  ~CudnnConvolutions();
  CudnnConvolutions(const CudnnConvolutions&) = delete;
  CudnnConvolutions& operator=(const CudnnConvolutions&) = delete;

  void forward(const float* x, const float* w, float* y, const Conv2dGeometry& g);
  void backward_data(const float* dy, const float* w, float* dx, const Conv2dGeometry& g);
  void update(float* w, const float* dy, const float* x, const Conv2dGeometry& g, float decay,
              float step);

 private:
  struct Plan;  // descriptors + algorithms for one geometry
  using Key = std::tuple<int, int, int, int, int, int, int, int, int, int, int, int, int>;

  Plan& plan_for(const Conv2dGeometry& g);
  // The context workspace laid out for one call: cuDNN's `cudnn_bytes` first, then the padded
  // copy of x (or of dx) when the plan needs one (*padded, else nullptr).
  void* scratch(const Plan& plan, size_t cudnn_bytes, float** padded);
  // x copied into the plan's padded layout (zeros appended below/right).
  void pad_input(const Plan& plan, const float* x, float* padded);

  DeviceContext& ctx_;
  std::map<Key, std::unique_ptr<Plan>> plans_;
};

}  // namespace bp::cuda
