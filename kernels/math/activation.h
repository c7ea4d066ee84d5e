// Per-element activation math: ReLU forward and its gate, shared by CPU and CUDA.
#pragma once
#include "hd.h"

namespace bp {

template <typename T>
BP_HD T relu(T x) {
  return x > T(0) ? x : T(0);
}

// The gate g = f'(a) of the paper, read from the ReLU's output (y > 0 iff a > 0),
// so no separate gate buffer is kept.
template <typename T>
BP_HD T relu_gate(T y) {
  return y > T(0) ? T(1) : T(0);
}

// Feedback gating: what a ReLU passes down is the arriving feedback times its gate.
template <typename T>
BP_HD T gated_feedback(T feedback, T y) {
  return y > T(0) ? feedback : T(0);
}

}  // namespace bp
