// Data on the GPU: the batch gather (uint8 images -> float in [0, 1], through the epoch's
// order) and the epoch permutation (Philox keys sorted on the device with Thrust).
#include <thrust/sequence.h>
#include <thrust/sort.h>

#include "cuda/launch.cuh"
#include "cuda/ops.h"
#include "cuda/thrust_policy.cuh"
#include "math/shuffle_key.h"

namespace bp::cuda {
namespace {

__global__ void gather_batch_kernel(const uint8_t* __restrict__ images,
                                    const int32_t* __restrict__ labels,
                                    const int32_t* __restrict__ order, StepArg first, int64_t rows,
                                    int64_t width, float* __restrict__ x, int32_t* __restrict__ y) {
  const int32_t* ord = order + first.value();
  BP_GRID_STRIDE(i, rows * width) {
    const int64_t r = i / width, k = i - r * width;
    const int64_t image = ord[r];
    x[i] = float(images[image * width + k]) * (1.0f / 255.0f);
    if (k == 0) y[r] = labels[image];
  }
}

__global__ void shuffle_keys_kernel(uint64_t* __restrict__ keys, int64_t count, uint64_t seed,
                                    RngStream stream, uint32_t round) {
  BP_GRID_STRIDE(i, count) keys[i] = shuffle_key(seed, stream, static_cast<uint32_t>(i), round);
}

}  // namespace

void gather_batch(const uint8_t* images, const int32_t* labels, const int32_t* order,
                  StepArg first, int64_t rows, int64_t width, float* x, int32_t* y,
                  cudaStream_t s) {
  if (rows * width <= 0) return;
  BP_LAUNCH(gather_batch_kernel, grid_for(rows * width), kThreads, 0, s, images, labels, order, first,
                                                                  rows, width, x, y);
  BP_CUDA_CHECK_LAUNCH(gather_batch_kernel);
}

void seeded_permutation(int32_t* order, int64_t count, uint64_t seed, RngStream stream,
                        uint32_t round, uint64_t* keys, cudaStream_t s) {
  if (count <= 0) return;
  BP_LAUNCH(shuffle_keys_kernel, grid_for(count), kThreads, 0, s, keys, count, seed, stream, round);
  BP_CUDA_CHECK_LAUNCH(shuffle_keys_kernel);
  thrust::sequence(thrust_on(s), order, order + count, 0);
  // Stable: equal keys keep index order, as the CPU's sort of (key, index) pairs.
  thrust::stable_sort_by_key(thrust_on(s), keys, keys + count, order);
}

}  // namespace bp::cuda
