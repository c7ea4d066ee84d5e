// Launchers of the CUDA backend's own kernels (everything but GEMMs, convolutions and the
// locally connected layers). Raw device pointers, one stream; all are safe to capture in a
// graph (no allocation, no synchronisation). Per-element math comes from kernels/math.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/step_arg.cuh"
#include "math/conv_geometry.h"
#include "math/philox.h"

namespace bp::cuda {

// --- elementwise.cu ---
void fill_f32(float* p, int64_t n, float v, cudaStream_t s);
void fill_f64(double* p, int64_t n, double v, cudaStream_t s);
void fill_i32(int32_t* p, int64_t n, int32_t v, cudaStream_t s);
void fill_u8(uint8_t* p, int64_t n, uint8_t v, cudaStream_t s);
void relu_forward(const float* x, float* y, int64_t n, cudaStream_t s);
void relu_feedback(const float* dy, const float* y, float* dx, int64_t n, cudaStream_t s);
void add_row_bias(float* y, const float* bias, int64_t rows, int64_t cols, cudaStream_t s);
// out[r, :] = scale[r] * w[index[r], :], gated by y (when not null)
void gather_rows_scaled(const float* w, const int32_t* index, const float* scale,
                        const float* gate_y, float* out, int64_t rows, int64_t cols,
                        cudaStream_t s);
void scatter_update_rows(float* w, const int32_t* index, const float* scale, const float* x,
                         int64_t units, int64_t cols, int64_t rows, float decay, float step,
                         cudaStream_t s);
void scatter_update_bias(float* bias, const int32_t* index, const float* scale, int64_t units,
                         int64_t rows, float decay, float step, cudaStream_t s);
void set_replay_offsets(int64_t* offsets, int64_t batches_ahead, int64_t steps_ahead,
                        cudaStream_t s);

// --- reduce.cu: per-column sums of a [rows, cols] view, deterministic (fixed order) ---
// Workspace doubles needed by the column reductions below for this shape.
int64_t column_workspace_doubles(int64_t rows, int64_t cols);
// bias = decay * bias - step * sum_r dy[r, :]
void update_bias(float* bias, const float* dy, int64_t rows, int64_t cols, float decay,
                 float step, double* workspace, cudaStream_t s);
// counts[slot] += the number of NaN and Inf among x[0, n) (workspace: column_workspace_doubles(n, 1)).
void count_nonfinite(const float* x, int64_t n, double* counts, int64_t slot, double* workspace,
                     cudaStream_t s);

// --- norm_pool.cu ---
int64_t batchnorm_workspace_doubles(int64_t rows, int64_t channels);
void batchnorm_forward_train(const float* x, const float* gamma, const float* beta, float* y,
                             float* saved_mean, float* saved_inv_std, float* running_mean,
                             float* running_var, int64_t rows, int64_t channels, float momentum,
                             double epsilon, double* workspace, cudaStream_t s);
void batchnorm_forward_eval(const float* x, const float* gamma, const float* beta,
                            const float* running_mean, const float* running_var, int64_t rows,
                            int64_t channels, double epsilon, float* y, cudaStream_t s);
// dx may be null; gamma and beta are updated after dx is computed from the old gamma.
void batchnorm_backward(const float* dy, const float* x, const float* saved_mean,
                        const float* saved_inv_std, float* gamma, float* beta, float* dx,
                        int64_t rows, int64_t channels, float decay, float step,
                        double* workspace, cudaStream_t s);
void maxpool2d_forward(const float* x, float* y, const Pool2dGeometry& g, cudaStream_t s);
void maxpool2d_backward(const float* dy, const float* x, float* dx, const Pool2dGeometry& g,
                        cudaStream_t s);
void dropout_apply(const float* x, float* y, int64_t n, float rate, uint64_t seed, StepArg step,
                   uint32_t layer, cudaStream_t s);

// --- heads.cu (stats: float64 [kStatCount], accumulated) ---
void brainprop_head(const float* logits, const int32_t* labels, int64_t batch, int classes,
                    float epsilon, uint64_t seed, StepArg step, int32_t* action, float* err,
                    double* stats, cudaStream_t s);
// baseline: float64 [1], read, then moved by the batch's mean reward (ReinforceHeadArgs).
void reinforce_head(const float* logits, const int32_t* labels, int64_t batch, int classes,
                    uint64_t seed, StepArg step, double baseline_rate, double* baseline,
                    float* grad, double* stats, cudaStream_t s);
void softmax_xent_head(const float* logits, const int32_t* labels, int64_t batch, int classes,
                       float* grad, double* stats, cudaStream_t s);
void count_correct(const float* logits, const int32_t* labels, int64_t batch, int classes,
                   double* stats, cudaStream_t s);

// --- data.cu ---
// x[r, :] = images[order[first + r], :] / 255, y[r] = labels[order[first + r]]
void gather_batch(const uint8_t* images, const int32_t* labels, const int32_t* order,
                  StepArg first, int64_t rows, int64_t width, float* x, int32_t* y,
                  cudaStream_t s);
// order = the seeded permutation of count items (keys: math/shuffle_key.h, stable sort).
void seeded_permutation(int32_t* order, int64_t count, uint64_t seed, RngStream stream,
                        uint32_t round, uint64_t* keys, cudaStream_t s);

}  // namespace bp::cuda
