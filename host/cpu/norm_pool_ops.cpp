#include "cpu/norm_pool_ops.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/dispatch.h"
#include "math/dropout.h"
#include "math/normalization.h"

namespace bp::cpu {
namespace {

// Per-channel sums over rows of a [rows, C] view, accumulated in double: fixed blocks of rows
// (their size depends on the shape only) are summed in parallel, then added in block order, so
// the result is the same for any thread count. fn(row, c) gives the value to add.
template <typename Fn>
std::vector<double> channel_sums(int64_t rows, int64_t channels, Fn&& fn) {
  constexpr int64_t kBlockRows = 1024;
  const int64_t blocks = (rows + kBlockRows - 1) / kBlockRows;
  std::vector<double> partial(size_t(blocks * channels), 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    double* mine = partial.data() + blk * channels;
    for (int64_t r = blk * kBlockRows; r < std::min(rows, (blk + 1) * kBlockRows); ++r)
      for (int64_t c = 0; c < channels; ++c) mine[c] += fn(r, c);
  }
  std::vector<double> total(size_t(channels), 0.0);
  for (int64_t blk = 0; blk < blocks; ++blk)
    for (int64_t c = 0; c < channels; ++c) total[size_t(c)] += partial[size_t(blk * channels + c)];
  return total;
}

}  // namespace

void batchnorm_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& y,
                             Tensor& saved_mean, Tensor& saved_inv_std, Tensor& running_mean,
                             Tensor& running_var, double momentum, double epsilon) {
  dispatch_float(x.dtype(), "batchnorm_forward_train", [&](auto* tag) {
    using T = BP_FLOAT_TYPE(tag);
    const int64_t C = gamma.numel(), rows = x.numel() / C;
    BP_CHECK(rows >= 1, "batchnorm needs at least one row");
    const T* in = x.data<T>();
    const std::vector<double> sum = channel_sums(rows, C, [&](int64_t r, int64_t c) { return double(in[r * C + c]); });
    std::vector<double> mean(static_cast<size_t>(C));
    for (int64_t c = 0; c < C; ++c) mean[size_t(c)] = sum[size_t(c)] / double(rows);
    const std::vector<double> sq = channel_sums(rows, C, [&](int64_t r, int64_t c) {
      const double d = double(in[r * C + c]) - mean[size_t(c)];
      return d * d;
    });
    T* m = saved_mean.data<T>();
    T* inv = saved_inv_std.data<T>();
    T* rm = running_mean.data<T>();
    T* rv = running_var.data<T>();
    for (int64_t c = 0; c < C; ++c) {
      const double var = sq[size_t(c)] / double(rows);
      m[c] = T(mean[size_t(c)]);
      inv[c] = T(1.0 / std::sqrt(var + epsilon));
      const double unbiased = rows > 1 ? sq[size_t(c)] / double(rows - 1) : var;
      rm[c] = moving_average(rm[c], T(mean[size_t(c)]), T(momentum));
      rv[c] = moving_average(rv[c], T(unbiased), T(momentum));
    }
    const T* gm = gamma.data<T>();
    const T* bt = beta.data<T>();
    T* out = y.data<T>();
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < C; ++c)
        out[r * C + c] = batchnorm_apply(in[r * C + c], m[c], inv[c], gm[c], bt[c]);
  });
}

void batchnorm_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                            const Tensor& running_mean, const Tensor& running_var, double epsilon,
                            Tensor& y) {
  dispatch_float(x.dtype(), "batchnorm_forward_eval", [&](auto* tag) {
    using T = BP_FLOAT_TYPE(tag);
    const int64_t C = gamma.numel(), rows = x.numel() / C;
    std::vector<T> inv(static_cast<size_t>(C));
    const T* rv = running_var.data<T>();
    for (int64_t c = 0; c < C; ++c) inv[size_t(c)] = T(1.0 / std::sqrt(double(rv[c]) + epsilon));
    const T *in = x.data<T>(), *rm = running_mean.data<T>(), *gm = gamma.data<T>(), *bt = beta.data<T>();
    T* out = y.data<T>();
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < C; ++c)
        out[r * C + c] = batchnorm_apply(in[r * C + c], rm[c], inv[size_t(c)], gm[c], bt[c]);
  });
}

void batchnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& saved_mean,
                        const Tensor& saved_inv_std, Tensor& gamma, Tensor& beta, Tensor* dx,
                        double decay, double step) {
  dispatch_float(x.dtype(), "batchnorm_backward", [&](auto* tag) {
    using T = BP_FLOAT_TYPE(tag);
    const int64_t C = gamma.numel(), rows = x.numel() / C;
    const T *g = dy.data<T>(), *in = x.data<T>(), *m = saved_mean.data<T>(), *inv = saved_inv_std.data<T>();
    const std::vector<double> sum_dy = channel_sums(rows, C, [&](int64_t r, int64_t c) { return double(g[r * C + c]); });
    const std::vector<double> sum_dy_xhat = channel_sums(rows, C, [&](int64_t r, int64_t c) {
      return double(g[r * C + c]) * double((in[r * C + c] - m[c]) * inv[c]);
    });
    T* gm = gamma.data<T>();
    if (dx) {
      T* out = dx->data<T>();
      const T n = T(rows);
#pragma omp parallel for schedule(static)
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < C; ++c) {
          const T xhat = (in[r * C + c] - m[c]) * inv[c];
          out[r * C + c] = batchnorm_input_grad(g[r * C + c], xhat, gm[c], inv[c], T(sum_dy[size_t(c)]),
                                                T(sum_dy_xhat[size_t(c)]), n);
        }
    }
    T* bt = beta.data<T>();
    for (int64_t c = 0; c < C; ++c) {
      gm[c] = T(decay) * gm[c] - T(step) * T(sum_dy_xhat[size_t(c)]);
      bt[c] = T(decay) * bt[c] - T(step) * T(sum_dy[size_t(c)]);
    }
  });
}

void maxpool2d_forward(const Tensor& x, Tensor& y, const Pool2dGeometry& g) {
  dispatch_float(x.dtype(), "maxpool2d_forward", [&](auto* tag) {
    using T = BP_FLOAT_TYPE(tag);
    const T* in = x.data<T>();
    T* out = y.data<T>();
    const int C = g.channels;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < g.batch; ++b)
      for (int oy = 0; oy < g.out_h; ++oy)
        for (int ox = 0; ox < g.out_w; ++ox)
          for (int c = 0; c < C; ++c) {
            T best = in[((int64_t(b) * g.in_h + oy * g.stride) * g.in_w + ox * g.stride) * C + c];
            for (int ky = 0; ky < g.pool; ++ky)
              for (int kx = 0; kx < g.pool; ++kx) {
                const T v = in[((int64_t(b) * g.in_h + oy * g.stride + ky) * g.in_w + ox * g.stride + kx) * C + c];
                best = v > best ? v : best;
              }
            out[((int64_t(b) * g.out_h + oy) * g.out_w + ox) * C + c] = best;
          }
  });
}

void maxpool2d_backward(const Tensor& dy, const Tensor& x, Tensor& dx, const Pool2dGeometry& g) {
  dispatch_float(x.dtype(), "maxpool2d_backward", [&](auto* tag) {
    using T = BP_FLOAT_TYPE(tag);
    const T *in = x.data<T>(), *grad = dy.data<T>();
    T* out = dx.data<T>();
    const int C = g.channels;
    // One sample per iteration: windows of different samples never share inputs.
#pragma omp parallel for schedule(static)
    for (int b = 0; b < g.batch; ++b) {
      const int64_t base = int64_t(b) * g.in_h * g.in_w * C;
      std::fill(out + base, out + base + int64_t(g.in_h) * g.in_w * C, T(0));
      for (int oy = 0; oy < g.out_h; ++oy)
        for (int ox = 0; ox < g.out_w; ++ox)
          for (int c = 0; c < C; ++c) {
            int64_t arg = base + (int64_t(oy * g.stride) * g.in_w + ox * g.stride) * C + c;
            for (int ky = 0; ky < g.pool; ++ky)
              for (int kx = 0; kx < g.pool; ++kx) {
                const int64_t i = base + (int64_t(oy * g.stride + ky) * g.in_w + ox * g.stride + kx) * C + c;
                if (in[i] > in[arg]) arg = i;  // the first maximum keeps the gradient
              }
            out[arg] += grad[((int64_t(b) * g.out_h + oy) * g.out_w + ox) * C + c];
          }
    }
  });
}

void dropout_apply(const Tensor& x, Tensor& y, float rate, uint64_t seed, uint64_t step,
                   uint32_t layer) {
  dispatch_float(x.dtype(), "dropout_apply", [&](auto* tag) {
    using T = BP_FLOAT_TYPE(tag);
    const T* in = x.data<T>();
    T* out = y.data<T>();
    const int64_t n = x.numel();
    // Four elements per Philox call; the mask of element i is dropout_multiplier(.., i).
#pragma omp parallel for schedule(static)
    for (int64_t group = 0; group < (n + 3) / 4; ++group) {
      const Philox4 r = dropout_draw(seed, step, layer, uint64_t(group));
      for (int64_t i = group * 4, j = 0; j < 4 && i < n; ++i, ++j)
        out[i] = in[i] * T(dropout_keep_scale(rate, r.v[j]));
    }
  });
}

}  // namespace bp::cpu
