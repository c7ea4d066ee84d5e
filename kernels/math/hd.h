// Marks the per-element math that both the CPU backend and the CUDA kernels compile.
#pragma once

#if defined(__CUDACC__)
#define BP_HD __host__ __device__ __forceinline__
#else
#define BP_HD inline
#endif
