// Force-included (-include) before every CUDA source compiled for the emulated device: makes
// CUDA C++ host C++. NVIDIA's headers keep these definitions of the execution-space keywords
// (they define them only where undefined), so cuda_runtime.h and friends are the real ones;
// only their library implementations are replaced (cuda/emulator/*.cpp).
#pragma once

#if defined(__CUDACC__)
#error "bp_emu/prelude.h is for the emulated-device build (host compiler), not for nvcc"
#endif

#define BRAINPROP_CUDA_EMULATOR 1
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
// Every __shared__ variable is a static in one named section: the scheduler runs one block at a
// time and fills the whole section with NaN bytes before each block, so each block starts with
// its own, unwritten shared memory. (clang keeps the section on template statics; GCC does not,
// which is why the emulated build uses clang.)
#define __shared__ static __attribute__((section("bp_emu_shared")))

#include <cuda_runtime.h>

#include "bp_emu/kernel_launch.h"
