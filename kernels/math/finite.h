// Whether a value is NaN or ±Inf, the same test on the CPU and in CUDA kernels: v - v is 0 for
// every finite v and NaN otherwise (no <cmath> classification needed in device code).
#pragma once
#include "math/hd.h"

namespace bp {

template <typename T>
BP_HD bool is_nonfinite(T v) {
  const T d = v - v;
  return d != d;
}

}  // namespace bp
