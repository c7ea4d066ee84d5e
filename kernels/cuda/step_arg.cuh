// A per-step scalar (a batch offset, a Philox step) as a kernel sees it. Outside a graph it
// is `base`; inside a captured step it is base + stride * offsets[which], the offsets being
// device memory that StepGraph::replay writes before each launch of the graph.
#pragma once
#include <cstdint>

namespace bp::cuda {

struct StepArg {
  int64_t base = 0;
  int64_t stride = 1;
  const int64_t* offsets = nullptr;  // null: not in a graph
  int which = 0;                     // 0: batches ahead, 1: steps ahead

#if defined(__CUDACC__) || defined(BRAINPROP_CUDA_EMULATOR)
  __device__ __forceinline__ int64_t value() const {
    return offsets ? base + stride * offsets[which] : base;
  }
#endif
};

}  // namespace bp::cuda
