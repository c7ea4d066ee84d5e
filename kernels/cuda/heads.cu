// Output heads: BrainProp's Max-Boltzmann action selection, reward and RPE; REINFORCE's
// sampled policy gradient and its running baseline; EBP's softmax cross-entropy; and the
// correct-count of evaluation. One block: the batch is small (<= a few
// thousand rows), each thread takes rows t, t + 256, ..., and the epoch's running sums are
// reduced in a fixed order in shared memory and added to the device stats (no host sync).
#include "core/backend.h"
#include "cuda/launch.cuh"
#include "cuda/ops.h"
#include "math/heads.h"

namespace bp::cuda {
namespace {

constexpr int kHeadThreads = 256;
constexpr int kSums = 4;  // loss, correct, reward, explored

// Adds each thread's kSums values over the block in a fixed tree order into stats; returns the
// block's reward sum (valid on thread 0).
__device__ double reduce_into_stats(double (&mine)[kSums], double* stats, int64_t batch) {
  __shared__ double shared[kSums][kHeadThreads];
  for (int k = 0; k < kSums; ++k) shared[k][threadIdx.x] = mine[k];
  __syncthreads();
  for (int width = kHeadThreads / 2; width > 0; width /= 2) {
    if (int(threadIdx.x) < width)
      for (int k = 0; k < kSums; ++k) shared[k][threadIdx.x] += shared[k][threadIdx.x + width];
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    stats[kStatLoss] += shared[0][0];
    stats[kStatCorrect] += shared[1][0];
    stats[kStatReward] += shared[2][0];
    stats[kStatExplored] += shared[3][0];
    stats[kStatSamples] += double(batch);
  }
  return shared[2][0];
}

__global__ void brainprop_head_kernel(const float* __restrict__ logits,
                                      const int32_t* __restrict__ labels, int64_t batch,
                                      int classes, float epsilon, uint64_t seed, StepArg step,
                                      int32_t* __restrict__ action, float* __restrict__ err,
                                      double* __restrict__ stats) {
  const uint64_t at = uint64_t(step.value());
  double mine[kSums] = {0, 0, 0, 0};
  for (int64_t b = threadIdx.x; b < batch; b += blockDim.x) {
    const float* row = logits + b * classes;
    const ActionChoice choice =
        max_boltzmann_select(row, classes, epsilon, seed, at, static_cast<uint32_t>(b));
    const float reward = reward_for<float>(choice.action, labels[b]);
    const float delta = reward - row[choice.action];
    action[b] = choice.action;
    err[b] = -delta;
    mine[0] += double(brainprop_sample_loss(delta));
    mine[1] += argmax_row(row, classes) == labels[b] ? 1.0 : 0.0;
    mine[2] += double(reward);
    mine[3] += choice.explored ? 1.0 : 0.0;
  }
  reduce_into_stats(mine, stats, batch);
}

// The baseline is read by every thread before the reduction's barriers and written by thread 0
// after them, so the whole batch uses the old value (as on the CPU).
__global__ void reinforce_head_kernel(const float* __restrict__ logits,
                                      const int32_t* __restrict__ labels, int64_t batch,
                                      int classes, uint64_t seed, StepArg step, double rate,
                                      double* baseline, float* __restrict__ grad,
                                      double* __restrict__ stats) {
  const uint64_t at = uint64_t(step.value());
  const double b_old = *baseline;
  double mine[kSums] = {0, 0, 0, 0};
  for (int64_t b = threadIdx.x; b < batch; b += blockDim.x) {
    const float* row = logits + b * classes;
    const int greedy = argmax_row(row, classes);
    const int s = reinforce_select(row, classes, seed, at, static_cast<uint32_t>(b));
    const float reward = reward_for<float>(s, labels[b]);
    mine[0] += double(reinforce_row(row, classes, s, reward, float(b_old), grad + b * classes));
    mine[1] += greedy == labels[b] ? 1.0 : 0.0;
    mine[2] += double(reward);
    mine[3] += s != greedy ? 1.0 : 0.0;
  }
  const double reward_sum = reduce_into_stats(mine, stats, batch);
  if (threadIdx.x == 0) *baseline = reinforce_baseline_update(b_old, reward_sum, batch, rate);
}

__global__ void softmax_xent_kernel(const float* __restrict__ logits,
                                    const int32_t* __restrict__ labels, int64_t batch, int classes,
                                    float* __restrict__ grad, double* __restrict__ stats) {
  double mine[kSums] = {0, 0, 0, 0};
  for (int64_t b = threadIdx.x; b < batch; b += blockDim.x) {
    const float* row = logits + b * classes;
    mine[0] += double(softmax_xent_row(row, classes, labels[b], grad + b * classes));
    mine[1] += argmax_row(row, classes) == labels[b] ? 1.0 : 0.0;
  }
  reduce_into_stats(mine, stats, batch);
}

__global__ void count_correct_kernel(const float* __restrict__ logits,
                                     const int32_t* __restrict__ labels, int64_t batch,
                                     int classes, double* __restrict__ stats) {
  double mine[kSums] = {0, 0, 0, 0};
  for (int64_t b = threadIdx.x; b < batch; b += blockDim.x)
    mine[1] += argmax_row(logits + b * classes, classes) == labels[b] ? 1.0 : 0.0;
  reduce_into_stats(mine, stats, batch);
}

}  // namespace

void brainprop_head(const float* logits, const int32_t* labels, int64_t batch, int classes,
                    float epsilon, uint64_t seed, StepArg step, int32_t* action, float* err,
                    double* stats, cudaStream_t s) {
  BP_LAUNCH(brainprop_head_kernel, 1, kHeadThreads, 0, s, logits, labels, batch, classes, epsilon, seed,
                                                    step, action, err, stats);
  BP_CUDA_CHECK_LAUNCH(brainprop_head_kernel);
}

void reinforce_head(const float* logits, const int32_t* labels, int64_t batch, int classes,
                    uint64_t seed, StepArg step, double baseline_rate, double* baseline,
                    float* grad, double* stats, cudaStream_t s) {
  BP_LAUNCH(reinforce_head_kernel, 1, kHeadThreads, 0, s, logits, labels, batch, classes, seed,
            step, baseline_rate, baseline, grad, stats);
  BP_CUDA_CHECK_LAUNCH(reinforce_head_kernel);
}

void softmax_xent_head(const float* logits, const int32_t* labels, int64_t batch, int classes,
                       float* grad, double* stats, cudaStream_t s) {
  BP_LAUNCH(softmax_xent_kernel, 1, kHeadThreads, 0, s, logits, labels, batch, classes, grad, stats);
  BP_CUDA_CHECK_LAUNCH(softmax_xent_kernel);
}

void count_correct(const float* logits, const int32_t* labels, int64_t batch, int classes,
                   double* stats, cudaStream_t s) {
  BP_LAUNCH(count_correct_kernel, 1, kHeadThreads, 0, s, logits, labels, batch, classes, stats);
  BP_CUDA_CHECK_LAUNCH(count_correct_kernel);
}

}  // namespace bp::cuda
