// Batch normalisation (Keras semantics, as host/cpu/norm_pool_ops.cpp), max pooling and
// dropout. Channel statistics use the deterministic column sums; per-element math is shared
// with the CPU through math/normalization.h and math/dropout.h.
#include "cuda/column_sums.cuh"
#include "cuda/ops.h"
#include "math/dropout.h"
#include "math/normalization.h"

namespace bp::cuda {
namespace {

struct SquaredDeviation {
  const float* x;
  const double* mean;
  int64_t cols;
  __device__ double operator()(int64_t r, int64_t c) const {
    const double d = double(x[r * cols + c]) - mean[c];
    return d * d;
  }
};

struct StoreMean {
  double* mean;
  double rows;
  __device__ void operator()(int64_t c, double total) const { mean[c] = total / rows; }
};

// Saves the batch statistics for backward and moves the running averages (unbiased variance).
struct FinishVariance {
  const double* mean;
  float *saved_mean, *saved_inv_std, *running_mean, *running_var;
  int64_t rows;
  float momentum;
  double epsilon;
  __device__ void operator()(int64_t c, double sq) const {
    const double var = sq / double(rows);
    saved_mean[c] = float(mean[c]);
    saved_inv_std[c] = float(1.0 / sqrt(var + epsilon));
    const double unbiased = rows > 1 ? sq / double(rows - 1) : var;
    running_mean[c] = moving_average(running_mean[c], float(mean[c]), momentum);
    running_var[c] = moving_average(running_var[c], float(unbiased), momentum);
  }
};

struct StoreSum {
  double* out;
  __device__ void operator()(int64_t c, double total) const { out[c] = total; }
};

struct DyTimesXhat {
  const float *dy, *x, *mean, *inv_std;
  int64_t cols;
  __device__ double operator()(int64_t r, int64_t c) const {
    const int64_t i = r * cols + c;
    return double(dy[i]) * double((x[i] - mean[c]) * inv_std[c]);
  }
};

__global__ void batchnorm_apply_kernel(const float* __restrict__ x, const float* __restrict__ mean,
                                       const float* __restrict__ inv_std,
                                       const float* __restrict__ gamma,
                                       const float* __restrict__ beta, float* __restrict__ y,
                                       int64_t n, int64_t channels) {
  BP_GRID_STRIDE(i, n) {
    const int64_t c = i % channels;
    y[i] = batchnorm_apply(x[i], mean[c], inv_std[c], gamma[c], beta[c]);
  }
}

__global__ void batchnorm_eval_kernel(const float* __restrict__ x, const float* __restrict__ gamma,
                                      const float* __restrict__ beta,
                                      const float* __restrict__ running_mean,
                                      const float* __restrict__ running_var, double epsilon,
                                      float* __restrict__ y, int64_t n, int64_t channels) {
  BP_GRID_STRIDE(i, n) {
    const int64_t c = i % channels;
    const float inv = float(1.0 / sqrt(double(running_var[c]) + epsilon));
    y[i] = batchnorm_apply(x[i], running_mean[c], inv, gamma[c], beta[c]);
  }
}

__global__ void batchnorm_input_grad_kernel(const float* __restrict__ dy, const float* __restrict__ x,
                                            const float* __restrict__ mean,
                                            const float* __restrict__ inv_std,
                                            const float* __restrict__ gamma,
                                            const double* __restrict__ sum_dy,
                                            const double* __restrict__ sum_dy_xhat,
                                            float* __restrict__ dx, int64_t n, int64_t channels,
                                            float rows) {
  BP_GRID_STRIDE(i, n) {
    const int64_t c = i % channels;
    const float xhat = (x[i] - mean[c]) * inv_std[c];
    dx[i] = batchnorm_input_grad(dy[i], xhat, gamma[c], inv_std[c], float(sum_dy[c]),
                                 float(sum_dy_xhat[c]), rows);
  }
}

__global__ void batchnorm_update_kernel(float* __restrict__ gamma, float* __restrict__ beta,
                                        const double* __restrict__ sum_dy,
                                        const double* __restrict__ sum_dy_xhat, int64_t channels,
                                        float decay, float step) {
  BP_GRID_STRIDE(c, channels) {
    gamma[c] = decay * gamma[c] - step * float(sum_dy_xhat[c]);
    beta[c] = decay * beta[c] - step * float(sum_dy[c]);
  }
}

__device__ __forceinline__ int64_t nhwc(const Pool2dGeometry& g, int b, int y, int x, int c, int h,
                                        int w) {
  return ((int64_t(b) * h + y) * w + x) * g.channels + c;
}

__global__ void maxpool_forward_kernel(const float* __restrict__ x, float* __restrict__ y,
                                       Pool2dGeometry g) {
  const int64_t n = int64_t(g.batch) * g.out_h * g.out_w * g.channels;
  BP_GRID_STRIDE(i, n) {
    const int c = int(i % g.channels);
    int64_t rest = i / g.channels;
    const int ox = int(rest % g.out_w);
    rest /= g.out_w;
    const int oy = int(rest % g.out_h);
    const int b = int(rest / g.out_h);
    float best = x[nhwc(g, b, oy * g.stride, ox * g.stride, c, g.in_h, g.in_w)];
    for (int ky = 0; ky < g.pool; ++ky)
      for (int kx = 0; kx < g.pool; ++kx) {
        const float v = x[nhwc(g, b, oy * g.stride + ky, ox * g.stride + kx, c, g.in_h, g.in_w)];
        best = v > best ? v : best;
      }
    y[i] = best;
  }
}

// One thread per input element: adds dy of every window whose first maximum it is (a gather,
// so overlapping windows need no atomics and the sum order is fixed).
__global__ void maxpool_backward_kernel(const float* __restrict__ dy, const float* __restrict__ x,
                                        float* __restrict__ dx, Pool2dGeometry g) {
  const int64_t n = int64_t(g.batch) * g.in_h * g.in_w * g.channels;
  BP_GRID_STRIDE(i, n) {
    const int c = int(i % g.channels);
    int64_t rest = i / g.channels;
    const int ix = int(rest % g.in_w);
    rest /= g.in_w;
    const int iy = int(rest % g.in_h);
    const int b = int(rest / g.in_h);
    const int oy0 = iy >= g.pool ? (iy - g.pool) / g.stride + 1 : 0;
    const int ox0 = ix >= g.pool ? (ix - g.pool) / g.stride + 1 : 0;
    const int oy1 = min(iy / g.stride, g.out_h - 1), ox1 = min(ix / g.stride, g.out_w - 1);
    float sum = 0.0f;
    for (int oy = oy0; oy <= oy1; ++oy)
      for (int ox = ox0; ox <= ox1; ++ox) {
        int ay = oy * g.stride, ax = ox * g.stride;
        float best = x[nhwc(g, b, ay, ax, c, g.in_h, g.in_w)];
        for (int ky = 0; ky < g.pool; ++ky)
          for (int kx = 0; kx < g.pool; ++kx) {
            const float v = x[nhwc(g, b, oy * g.stride + ky, ox * g.stride + kx, c, g.in_h, g.in_w)];
            if (v > best) {
              best = v;
              ay = oy * g.stride + ky;
              ax = ox * g.stride + kx;
            }
          }
        if (ay == iy && ax == ix) sum += dy[nhwc(g, b, oy, ox, c, g.out_h, g.out_w)];
      }
    dx[i] = sum;
  }
}

__global__ void dropout_kernel(const float* x, float* y, int64_t n,  // may run in place
                               float rate, uint64_t seed, StepArg step, uint32_t layer) {
  const uint64_t at = uint64_t(step.value());
  BP_GRID_STRIDE(group, (n + 3) / 4) {
    const Philox4 r = dropout_draw(seed, at, layer, uint64_t(group));
    for (int j = 0; j < 4 && group * 4 + j < n; ++j) {
      const int64_t i = group * 4 + j;
      y[i] = x[i] * dropout_keep_scale(rate, r.v[j]);
    }
  }
}

}  // namespace

int64_t batchnorm_workspace_doubles(int64_t rows, int64_t channels) {
  return column_chunks(rows) * channels + 2 * channels;
}

void batchnorm_forward_train(const float* x, const float* gamma, const float* beta, float* y,
                             float* saved_mean, float* saved_inv_std, float* running_mean,
                             float* running_var, int64_t rows, int64_t channels, float momentum,
                             double epsilon, double* workspace, cudaStream_t s) {
  if (rows <= 0 || channels <= 0) return;
  double* mean = workspace;
  double* partial = workspace + 2 * channels;
  column_sums(rows, channels, ReadColumns{x, channels}, StoreMean{mean, double(rows)}, partial, s);
  column_sums(rows, channels, SquaredDeviation{x, mean, channels},
              FinishVariance{mean, saved_mean, saved_inv_std, running_mean, running_var, rows,
                             momentum, epsilon},
              partial, s);
  const int64_t n = rows * channels;
  BP_LAUNCH(batchnorm_apply_kernel, grid_for(n), kThreads, 0, s, x, saved_mean, saved_inv_std, gamma,
                                                           beta, y, n, channels);
  BP_CUDA_CHECK_LAUNCH(batchnorm_apply_kernel);
}

void batchnorm_forward_eval(const float* x, const float* gamma, const float* beta,
                            const float* running_mean, const float* running_var, int64_t rows,
                            int64_t channels, double epsilon, float* y, cudaStream_t s) {
  const int64_t n = rows * channels;
  if (n <= 0) return;
  BP_LAUNCH(batchnorm_eval_kernel, grid_for(n), kThreads, 0, s, x, gamma, beta, running_mean,
                                                          running_var, epsilon, y, n, channels);
  BP_CUDA_CHECK_LAUNCH(batchnorm_eval_kernel);
}

void batchnorm_backward(const float* dy, const float* x, const float* saved_mean,
                        const float* saved_inv_std, float* gamma, float* beta, float* dx,
                        int64_t rows, int64_t channels, float decay, float step,
                        double* workspace, cudaStream_t s) {
  if (rows <= 0 || channels <= 0) return;
  double* sum_dy = workspace;
  double* sum_dy_xhat = workspace + channels;
  double* partial = workspace + 2 * channels;
  column_sums(rows, channels, ReadColumns{dy, channels}, StoreSum{sum_dy}, partial, s);
  column_sums(rows, channels, DyTimesXhat{dy, x, saved_mean, saved_inv_std, channels},
              StoreSum{sum_dy_xhat}, partial, s);
  const int64_t n = rows * channels;
  if (dx) {
    BP_LAUNCH(batchnorm_input_grad_kernel, grid_for(n), kThreads, 0, s, 
        dy, x, saved_mean, saved_inv_std, gamma, sum_dy, sum_dy_xhat, dx, n, channels, float(rows));
    BP_CUDA_CHECK_LAUNCH(batchnorm_input_grad_kernel);
  }
  BP_LAUNCH(batchnorm_update_kernel, grid_for(channels), kThreads, 0, s, gamma, beta, sum_dy, sum_dy_xhat,
                                                                   channels, decay, step);
  BP_CUDA_CHECK_LAUNCH(batchnorm_update_kernel);
}

void maxpool2d_forward(const float* x, float* y, const Pool2dGeometry& g, cudaStream_t s) {
  const int64_t n = int64_t(g.batch) * g.out_h * g.out_w * g.channels;
  if (n <= 0) return;
  BP_LAUNCH(maxpool_forward_kernel, grid_for(n), kThreads, 0, s, x, y, g);
  BP_CUDA_CHECK_LAUNCH(maxpool_forward_kernel);
}

void maxpool2d_backward(const float* dy, const float* x, float* dx, const Pool2dGeometry& g,
                        cudaStream_t s) {
  const int64_t n = int64_t(g.batch) * g.in_h * g.in_w * g.channels;
  if (n <= 0) return;
  BP_LAUNCH(maxpool_backward_kernel, grid_for(n), kThreads, 0, s, dy, x, dx, g);
  BP_CUDA_CHECK_LAUNCH(maxpool_backward_kernel);
}

void dropout_apply(const float* x, float* y, int64_t n, float rate, uint64_t seed, StepArg step,
                   uint32_t layer, cudaStream_t s) {
  if (n <= 0) return;
  BP_LAUNCH(dropout_kernel, grid_for((n + 3) / 4), kThreads, 0, s, x, y, n, rate, seed, step, layer);
  BP_CUDA_CHECK_LAUNCH(dropout_kernel);
}

}  // namespace bp::cuda
