// Geometries for the convolution and locally connected parity tests: odd and even sizes,
// kernels 3, 4, 5 and rectangular, strides 1 and 2, 'same' (symmetric and TF's asymmetric
// bottom/right padding) and 'valid' (including inputs whose last rows no window reads).
#pragma once
#include <string>

#include "core/backend.h"

namespace bp::test {

struct ConvCase {
  const char* name;
  int in_h, in_w, in_c, filters, kernel_h, kernel_w, stride_h, stride_w;
  bool same;
  int batch;

  Conv2dGeometry geometry() const {
    Conv2dGeometry g = make_conv_geometry(in_h, in_w, in_c, filters, kernel_h, kernel_w,
                                          stride_h, stride_w, same);
    g.batch = batch;
    return g;
  }
};

}  // namespace bp::test
