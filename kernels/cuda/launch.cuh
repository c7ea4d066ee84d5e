// Launch shapes shared by the element-wise kernels: grid-stride loops over n elements with
// enough blocks to fill the GPU and no more.
#pragma once
#include <algorithm>
#include <cstdint>

#include "cuda/kernel_launch.cuh"
#include "cuda_check.h"

namespace bp::cuda {

constexpr int kThreads = 256;

inline unsigned grid_for(int64_t n, int threads = kThreads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(blocks, 65535LL * 16)));
}

#define BP_GRID_STRIDE(i, n)                                                           \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n);           \
       i += int64_t(gridDim.x) * blockDim.x)

}  // namespace bp::cuda
