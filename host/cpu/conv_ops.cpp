#include "cpu/conv_ops.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "cpu/blas_gemm.h"
#include "cpu/dispatch.h"

namespace bp::cpu {
namespace {

// Patch buffers are at most this many elements (16 MiB of float32) per chunk of samples.
constexpr int64_t kChunkElements = int64_t(4) << 20;

template <typename T>
std::vector<T>& scratch(size_t n) {
  static thread_local std::vector<T> buffer;
  if (buffer.size() < n) buffer.resize(n);
  return buffer;
}

int samples_per_chunk(const Conv2dGeometry& g) {
  const int64_t per_sample = int64_t(g.positions()) * g.patch_size();
  return static_cast<int>(std::clamp<int64_t>(kChunkElements / std::max<int64_t>(per_sample, 1), 1, g.batch));
}

// patches[(b - b0) * P + p, k] for samples b0 .. b0 + nb - 1; rows of K = kh * kw * in_c,
// copied a channel run (in_c contiguous values) at a time.
template <typename T>
void im2col(const T* x, const Conv2dGeometry& g, int b0, int nb, T* patches) {
  const int P = g.positions(), K = g.patch_size(), C = g.in_c;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < int64_t(nb) * P; ++row) {
    const int b = b0 + int(row / P), p = int(row % P);
    const int oy = p / g.out_w, ox = p % g.out_w;
    T* out = patches + row * K;
    for (int ky = 0; ky < g.kernel_h; ++ky) {
      const int iy = oy * g.stride_h - g.pad_top + ky;
      for (int kx = 0; kx < g.kernel_w; ++kx, out += C) {
        const int ix = ox * g.stride_w - g.pad_left + kx;
        if (iy < 0 || iy >= g.in_h || ix < 0 || ix >= g.in_w) {
          std::fill(out, out + C, T(0));
        } else {
          std::memcpy(out, x + ((int64_t(b) * g.in_h + iy) * g.in_w + ix) * C, sizeof(T) * C);
        }
      }
    }
  }
}

// dx += the patches scattered back; one sample per thread iteration keeps writes disjoint.
template <typename T>
void col2im_add(const T* patches, const Conv2dGeometry& g, int b0, int nb, T* dx) {
  const int P = g.positions(), K = g.patch_size(), C = g.in_c;
#pragma omp parallel for schedule(static)
  for (int bi = 0; bi < nb; ++bi) {
    T* sample = dx + int64_t(b0 + bi) * g.in_h * g.in_w * C;
    for (int p = 0; p < P; ++p) {
      const int oy = p / g.out_w, ox = p % g.out_w;
      const T* in = patches + (int64_t(bi) * P + p) * K;
      for (int ky = 0; ky < g.kernel_h; ++ky) {
        const int iy = oy * g.stride_h - g.pad_top + ky;
        for (int kx = 0; kx < g.kernel_w; ++kx, in += C) {
          const int ix = ox * g.stride_w - g.pad_left + kx;
          if (iy < 0 || iy >= g.in_h || ix < 0 || ix >= g.in_w) continue;
          T* out = sample + (int64_t(iy) * g.in_w + ix) * C;
          for (int c = 0; c < C; ++c) out[c] += in[c];
        }
      }
    }
  }
}

// Calls body(b0, nb, patches) for consecutive chunks of nb samples starting at b0, with a
// scratch buffer of nb * positions * patch_size elements; with_im2col fills it from x first.
template <typename T, typename Body>
void for_each_chunk(const Conv2dGeometry& g, const T* x, bool with_im2col, Body&& body) {
  const int chunk = samples_per_chunk(g);
  for (int b0 = 0; b0 < g.batch; b0 += chunk) {
    const int nb = std::min(chunk, g.batch - b0);
    T* patches = scratch<T>(size_t(nb) * g.positions() * g.patch_size()).data();
    if (with_im2col) im2col(x, g, b0, nb, patches);
    body(b0, nb, patches);
  }
}

void check_geometry(const Tensor& x, const Tensor& y, const Conv2dGeometry& g, const char* op) {
  BP_CHECK(x.numel() == int64_t(g.batch) * g.in_h * g.in_w * g.in_c,
           op << ": input " << shape_string(x.shape()) << " does not match the geometry");
  BP_CHECK(y.numel() == int64_t(g.batch) * g.out_h * g.out_w * g.out_c,
           op << ": output " << shape_string(y.shape()) << " does not match the geometry");
}

}  // namespace

void conv2d_forward(const Tensor& x, const Tensor& w, Tensor& y, const Conv2dGeometry& g) {
  check_geometry(x, y, g, "conv2d_forward");
  dispatch_float(x.dtype(), "conv2d_forward", [&](auto* tag) {
    using T = BP_FLOAT_TYPE(tag);
    const int P = g.positions(), K = g.patch_size(), F = g.out_c;
    for_each_chunk(g, x.data<T>(), true, [&](int b0, int nb, T* patches) {
      gemm(false, true, nb * P, F, K, 1.0, patches, K, w.data<T>(), K, 0.0,
           y.data<T>() + int64_t(b0) * P * F, F);
    });
  });
}

void conv2d_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx, const Conv2dGeometry& g) {
  check_geometry(dx, dy, g, "conv2d_backward_data");
  dispatch_float(dy.dtype(), "conv2d_backward_data", [&](auto* tag) {
    using T = BP_FLOAT_TYPE(tag);
    const int P = g.positions(), K = g.patch_size(), F = g.out_c;
    std::fill(dx.data<T>(), dx.data<T>() + dx.numel(), T(0));
    for_each_chunk(g, dy.data<T>(), false, [&](int b0, int nb, T* patches) {
      gemm(false, false, nb * P, K, F, 1.0, dy.data<T>() + int64_t(b0) * P * F, F, w.data<T>(), K,
           0.0, patches, K);
      col2im_add(patches, g, b0, nb, dx.data<T>());
    });
  });
}

void conv2d_update(Tensor& w, const Tensor& dy, const Tensor& x, const Conv2dGeometry& g,
                   double decay, double step) {
  check_geometry(x, dy, g, "conv2d_update");
  dispatch_float(w.dtype(), "conv2d_update", [&](auto* tag) {
    using T = BP_FLOAT_TYPE(tag);
    const int P = g.positions(), K = g.patch_size(), F = g.out_c;
    for_each_chunk(g, x.data<T>(), true, [&](int b0, int nb, T* patches) {
      // The first chunk applies the decay; later ones accumulate into the same weights.
      gemm(true, false, F, K, nb * P, -step, dy.data<T>() + int64_t(b0) * P * F, F, patches, K,
           b0 == 0 ? decay : 1.0, w.data<T>(), K);
    });
  });
}

// Locally connected: position p has its own [F, K] filter bank, W[p] at w + p * F * K.
// Each position is one small GEMM over the chunk's samples (row stride P * K in the patches,
// P * F in the NHWC output); positions run in parallel.

void local2d_forward(const Tensor& x, const Tensor& w, Tensor& y, const Conv2dGeometry& g) {
  check_geometry(x, y, g, "local2d_forward");
  dispatch_float(x.dtype(), "local2d_forward", [&](auto* tag) {
    using T = BP_FLOAT_TYPE(tag);
    const int P = g.positions(), K = g.patch_size(), F = g.out_c;
    for_each_chunk(g, x.data<T>(), true, [&](int b0, int nb, T* patches) {
      T* out = y.data<T>() + int64_t(b0) * P * F;
      const T* wp = w.data<T>();
#pragma omp parallel for schedule(static)
      for (int p = 0; p < P; ++p)
        gemm(false, true, nb, F, K, 1.0, patches + int64_t(p) * K, P * K, wp + int64_t(p) * F * K, K,
             0.0, out + int64_t(p) * F, P * F);
    });
  });
}

void local2d_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx, const Conv2dGeometry& g) {
  check_geometry(dx, dy, g, "local2d_backward_data");
  dispatch_float(dy.dtype(), "local2d_backward_data", [&](auto* tag) {
    using T = BP_FLOAT_TYPE(tag);
    const int P = g.positions(), K = g.patch_size(), F = g.out_c;
    std::fill(dx.data<T>(), dx.data<T>() + dx.numel(), T(0));
    for_each_chunk(g, dy.data<T>(), false, [&](int b0, int nb, T* patches) {
      const T* in = dy.data<T>() + int64_t(b0) * P * F;
      const T* wp = w.data<T>();
#pragma omp parallel for schedule(static)
      for (int p = 0; p < P; ++p)
        gemm(false, false, nb, K, F, 1.0, in + int64_t(p) * F, P * F, wp + int64_t(p) * F * K, K, 0.0,
             patches + int64_t(p) * K, P * K);
      col2im_add(patches, g, b0, nb, dx.data<T>());
    });
  });
}

void local2d_update(Tensor& w, const Tensor& dy, const Tensor& x, const Conv2dGeometry& g,
                    double decay, double step) {
  check_geometry(x, dy, g, "local2d_update");
  dispatch_float(w.dtype(), "local2d_update", [&](auto* tag) {
    using T = BP_FLOAT_TYPE(tag);
    const int P = g.positions(), K = g.patch_size(), F = g.out_c;
    for_each_chunk(g, x.data<T>(), true, [&](int b0, int nb, T* patches) {
      const T* in = dy.data<T>() + int64_t(b0) * P * F;
      T* wp = w.data<T>();
      const double beta = b0 == 0 ? decay : 1.0;
#pragma omp parallel for schedule(static)
      for (int p = 0; p < P; ++p)
        gemm(true, false, F, K, nb, -step, in + int64_t(p) * F, P * F, patches + int64_t(p) * K,
             P * K, beta, wp + int64_t(p) * F * K, K);
    });
  });
}

}  // namespace bp::cpu
