// Element-wise kernels: fills, ReLU and its feedback gate, bias, and the BrainProp output
// layer's row gather (the feedback of the selected units) and scatter update.
#include "cuda/launch.cuh"
#include "cuda/ops.h"
#include "math/activation.h"

namespace bp::cuda {
namespace {

template <typename T>
__global__ void fill_kernel(T* p, int64_t n, T v) {
  BP_GRID_STRIDE(i, n) p[i] = v;
}

__global__ void relu_forward_kernel(const float* x, float* y, int64_t n) {  // may run in place
  BP_GRID_STRIDE(i, n) y[i] = relu(x[i]);
}

// In place is allowed (dx may be dy): no __restrict__ on these pointers.
__global__ void relu_feedback_kernel(const float* dy, const float* y, float* dx, int64_t n) {
  BP_GRID_STRIDE(i, n) dx[i] = gated_feedback(dy[i], y[i]);
}

__global__ void add_row_bias_kernel(float* __restrict__ y, const float* __restrict__ bias,
                                    int64_t rows, int64_t cols) {
  BP_GRID_STRIDE(i, rows * cols) y[i] += bias[i % cols];
}

// The feedback of the selected output units: one row of W per sample, scaled by its error,
// and (fused) gated by the ReLU below, so the layer under the output gets its delta directly.
__global__ void gather_rows_kernel(const float* __restrict__ w, const int32_t* __restrict__ index,
                                   const float* __restrict__ scale, const float* __restrict__ gate_y,
                                   float* __restrict__ out, int64_t rows, int64_t cols) {
  BP_GRID_STRIDE(i, rows * cols) {
    const int64_t r = i / cols, c = i - r * cols;
    const float v = scale[r] * w[int64_t(index[r]) * cols + c];
    out[i] = gate_y ? gated_feedback(v, gate_y[i]) : v;
  }
}

// One thread per weight: sums the contributions of the samples that selected its unit, in
// sample order (deterministic, no atomics), then writes decay * w - step * sum.
__global__ void scatter_update_rows_kernel(float* __restrict__ w, const int32_t* __restrict__ index,
                                           const float* __restrict__ scale,
                                           const float* __restrict__ x, int64_t units,
                                           int64_t cols, int64_t rows, float decay, float step) {
  BP_GRID_STRIDE(i, units * cols) {
    const int64_t u = i / cols, c = i - u * cols;
    float sum = 0.0f;
    for (int64_t r = 0; r < rows; ++r)
      if (index[r] == u) sum += scale[r] * x[r * cols + c];
    w[i] = decay * w[i] - step * sum;
  }
}

__global__ void scatter_update_bias_kernel(float* __restrict__ bias, const int32_t* __restrict__ index,
                                           const float* __restrict__ scale, int64_t units,
                                           int64_t rows, float decay, float step) {
  BP_GRID_STRIDE(u, units) {
    float sum = 0.0f;
    for (int64_t r = 0; r < rows; ++r)
      if (index[r] == u) sum += scale[r];
    bias[u] = decay * bias[u] - step * sum;
  }
}

__global__ void set_offsets_kernel(int64_t* offsets, int64_t batches_ahead, int64_t steps_ahead) {
  offsets[0] = batches_ahead;
  offsets[1] = steps_ahead;
}

template <typename T>
void fill_any(T* p, int64_t n, T v, cudaStream_t s) {
  if (n <= 0) return;
  BP_LAUNCH(fill_kernel, grid_for(n), kThreads, 0, s, p, n, v);
  BP_CUDA_CHECK_LAUNCH(fill_kernel);
}

}  // namespace

void fill_f32(float* p, int64_t n, float v, cudaStream_t s) { fill_any(p, n, v, s); }
void fill_f64(double* p, int64_t n, double v, cudaStream_t s) { fill_any(p, n, v, s); }
void fill_i32(int32_t* p, int64_t n, int32_t v, cudaStream_t s) { fill_any(p, n, v, s); }
void fill_u8(uint8_t* p, int64_t n, uint8_t v, cudaStream_t s) { fill_any(p, n, v, s); }

void relu_forward(const float* x, float* y, int64_t n, cudaStream_t s) {
  if (n <= 0) return;
  BP_LAUNCH(relu_forward_kernel, grid_for(n), kThreads, 0, s, x, y, n);
  BP_CUDA_CHECK_LAUNCH(relu_forward_kernel);
}

void relu_feedback(const float* dy, const float* y, float* dx, int64_t n, cudaStream_t s) {
  if (n <= 0) return;
  BP_LAUNCH(relu_feedback_kernel, grid_for(n), kThreads, 0, s, dy, y, dx, n);
  BP_CUDA_CHECK_LAUNCH(relu_feedback_kernel);
}

void add_row_bias(float* y, const float* bias, int64_t rows, int64_t cols, cudaStream_t s) {
  if (rows * cols <= 0) return;
  BP_LAUNCH(add_row_bias_kernel, grid_for(rows * cols), kThreads, 0, s, y, bias, rows, cols);
  BP_CUDA_CHECK_LAUNCH(add_row_bias_kernel);
}

void gather_rows_scaled(const float* w, const int32_t* index, const float* scale,
                        const float* gate_y, float* out, int64_t rows, int64_t cols,
                        cudaStream_t s) {
  if (rows * cols <= 0) return;
  BP_LAUNCH(gather_rows_kernel, grid_for(rows * cols), kThreads, 0, s, w, index, scale, gate_y, out,
                                                               rows, cols);
  BP_CUDA_CHECK_LAUNCH(gather_rows_kernel);
}

void scatter_update_rows(float* w, const int32_t* index, const float* scale, const float* x,
                         int64_t units, int64_t cols, int64_t rows, float decay, float step,
                         cudaStream_t s) {
  if (units * cols <= 0) return;
  BP_LAUNCH(scatter_update_rows_kernel, grid_for(units * cols), kThreads, 0, s, 
      w, index, scale, x, units, cols, rows, decay, step);
  BP_CUDA_CHECK_LAUNCH(scatter_update_rows_kernel);
}

void scatter_update_bias(float* bias, const int32_t* index, const float* scale, int64_t units,
                         int64_t rows, float decay, float step, cudaStream_t s) {
  if (units <= 0) return;
  BP_LAUNCH(scatter_update_bias_kernel, grid_for(units), kThreads, 0, s, bias, index, scale, units, rows,
                                                                   decay, step);
  BP_CUDA_CHECK_LAUNCH(scatter_update_bias_kernel);
}

void set_replay_offsets(int64_t* offsets, int64_t batches_ahead, int64_t steps_ahead,
                        cudaStream_t s) {
  BP_LAUNCH(set_offsets_kernel, 1, 1, 0, s, offsets, batches_ahead, steps_ahead);
  BP_CUDA_CHECK_LAUNCH(set_offsets_kernel);
}

}  // namespace bp::cuda
