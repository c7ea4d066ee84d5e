// Locally connected layers (Keras LocallyConnected2D) on the GPU: every output pixel p has its
// own filter bank w[p] of shape [out_c, patch_size], patch elements ordered (kh, kw, in_c) as
// in math/conv_geometry.h. The kernels read patches straight from the NHWC input (implicit
// GEMM, tiles staged in shared memory): no unfolded copy, so memory stays near weights +
// activations. Design and roofline: docs/local2d-kernels.md.
#pragma once
#include <cuda_runtime.h>

#include "math/conv_geometry.h"

namespace bp::cuda {

// y[b, p, o] = sum_k w[p, o, k] * patch(x, b, p, k)        (y overwritten; g.batch samples)
void local2d_forward(const float* x, const float* w, float* y, const Conv2dGeometry& g,
                     cudaStream_t stream);
// dx[b, i] = sum over (p, o, k) whose patch element reads input i of dy[b, p, o] * w[p, o, k]
// (dx overwritten, zero where no patch reads it)
void local2d_backward_data(const float* dy, const float* w, float* dx, const Conv2dGeometry& g,
                           cudaStream_t stream);
// w[p, o, k] = decay * w[p, o, k] - step * sum_b dy[b, p, o] * patch(x, b, p, k)
// (the update written into the weights: no gradient buffer)
void local2d_update(float* w, const float* dy, const float* x, const Conv2dGeometry& g,
                    float decay, float step, cudaStream_t stream);

}  // namespace bp::cuda
