// CPU convolutions and locally connected layers: patches (im2col) and GEMMs, in chunks of
// samples so the patch buffer stays small. The update GEMMs write into the weights.
#pragma once
#include "core/tensor.h"
#include "math/conv_geometry.h"

namespace bp::cpu {

void conv2d_forward(const Tensor& x, const Tensor& w, Tensor& y, const Conv2dGeometry& g);
void conv2d_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx, const Conv2dGeometry& g);
void conv2d_update(Tensor& w, const Tensor& dy, const Tensor& x, const Conv2dGeometry& g,
                   double decay, double step);
void local2d_forward(const Tensor& x, const Tensor& w, Tensor& y, const Conv2dGeometry& g);
void local2d_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx, const Conv2dGeometry& g);
void local2d_update(Tensor& w, const Tensor& dy, const Tensor& x, const Conv2dGeometry& g,
                    double decay, double step);

}  // namespace bp::cpu
