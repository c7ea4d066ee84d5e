// Geometry of 2-D convolutions and locally connected layers on NHWC tensors, with
// TensorFlow's 'same'/'valid' padding rules (the reference is Keras): shared by the CPU
// backend and the CUDA kernels.
#pragma once
#include "hd.h"

namespace bp {

struct Conv2dGeometry {
  int batch = 0;
  int in_h = 0, in_w = 0, in_c = 0;
  int out_h = 0, out_w = 0, out_c = 0;
  int kernel_h = 0, kernel_w = 0;
  int stride_h = 1, stride_w = 1;
  int pad_top = 0, pad_left = 0;  // 'same' puts the odd extra pixel at the bottom/right, as TF

  BP_HD int patch_size() const { return kernel_h * kernel_w * in_c; }  // K of the GEMMs
  BP_HD int positions() const { return out_h * out_w; }
};

// Output size and leading padding of one spatial axis.
BP_HD void conv_axis(int in, int kernel, int stride, bool same, int* out, int* pad_before) {
  if (same) {
    *out = (in + stride - 1) / stride;
    const int total = (*out - 1) * stride + kernel - in;
    *pad_before = total > 0 ? total / 2 : 0;
  } else {
    *out = in >= kernel ? (in - kernel) / stride + 1 : 0;
    *pad_before = 0;
  }
}

BP_HD Conv2dGeometry make_conv_geometry(int in_h, int in_w, int in_c, int filters, int kernel_h,
                                        int kernel_w, int stride_h, int stride_w, bool same) {
  Conv2dGeometry g;
  g.in_h = in_h;
  g.in_w = in_w;
  g.in_c = in_c;
  g.out_c = filters;
  g.kernel_h = kernel_h;
  g.kernel_w = kernel_w;
  g.stride_h = stride_h;
  g.stride_w = stride_w;
  conv_axis(in_h, kernel_h, stride_h, same, &g.out_h, &g.pad_top);
  conv_axis(in_w, kernel_w, stride_w, same, &g.out_w, &g.pad_left);
  return g;
}

// The input pixel a patch element reads, or -1 where it falls in the zero padding.
// Patch elements are ordered (kh, kw, c), matching weights stored [.., kh, kw, c].
BP_HD long long patch_source(const Conv2dGeometry& g, int b, int oy, int ox, int k) {
  const int c = k % g.in_c;
  const int kx = (k / g.in_c) % g.kernel_w;
  const int ky = k / (g.in_c * g.kernel_w);
  const int iy = oy * g.stride_h - g.pad_top + ky;
  const int ix = ox * g.stride_w - g.pad_left + kx;
  if (iy < 0 || iy >= g.in_h || ix < 0 || ix >= g.in_w) return -1;
  return ((static_cast<long long>(b) * g.in_h + iy) * g.in_w + ix) * g.in_c + c;
}

// Max pooling (Keras MaxPooling2D, 'valid'): window pool x pool, stride `stride`.
struct Pool2dGeometry {
  int batch = 0, in_h = 0, in_w = 0, channels = 0, out_h = 0, out_w = 0, pool = 2, stride = 2;
};

// Keras 'valid' pooling: as many windows as fit whole (in >= pool).
BP_HD Pool2dGeometry make_pool_geometry(int in_h, int in_w, int channels, int pool, int stride) {
  Pool2dGeometry g;
  g.in_h = in_h;
  g.in_w = in_w;
  g.channels = channels;
  g.pool = pool;
  g.stride = stride;
  g.out_h = (in_h - pool) / stride + 1;
  g.out_w = (in_w - pool) / stride + 1;
  return g;
}

}  // namespace bp
