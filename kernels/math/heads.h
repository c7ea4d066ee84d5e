// Output heads, per sample: BrainProp's Max-Boltzmann action selection, reward and
// reward prediction error (RPE), and EBP's softmax cross-entropy. Shared by CPU and CUDA.
#pragma once
#include <cstdint>
#include <cmath>

#include "hd.h"
#include "philox.h"

namespace bp {

// exp and log evaluated in double and rounded once: the host's float math already promotes to
// double here, and doing the same on the GPU (instead of expf/logf, up to 2 ulp apart) makes
// both pick the same actions and losses to the last bit in all but freak cases.
BP_HD double exp_wide(double x) { return exp(x); }
BP_HD double log_wide(double x) { return log(x); }

template <typename T>
BP_HD int argmax_row(const T* a, int classes) {
  int best = 0;
  for (int c = 1; c < classes; ++c)
    if (a[c] > a[best]) best = c;  // first maximum wins, as numpy/torch argmax
  return best;
}

struct ActionChoice {
  int action;
  bool explored;  // the chosen unit is not the greedy one (an exploratory trial)
};

// Max-Boltzmann controller: with probability 1 - epsilon the greedy unit, otherwise a
// sample from softmax(a) at temperature 1. The two uniforms come from the Philox stream
// keyed by (seed, step, sample), so the CPU and GPU pick the same actions.
template <typename T>
BP_HD ActionChoice max_boltzmann_select(const T* a, int classes, float epsilon, uint64_t seed,
                                        uint64_t step, uint32_t sample) {
  const Philox4 r = philox_draw(seed, RngStream::kAction, sample, static_cast<uint32_t>(step),
                                static_cast<uint32_t>(step >> 32));
  const int greedy = argmax_row(a, classes);
  if (uniform_from_bits(r.v[0]) >= epsilon) return ActionChoice{greedy, false};
  const T top = a[greedy];
  T total = T(0);
  for (int c = 0; c < classes; ++c) total = static_cast<T>(total + exp_wide(a[c] - top));
  const T threshold = static_cast<T>(uniform_from_bits(r.v[1])) * total;
  T running = T(0);
  for (int c = 0; c < classes; ++c) {
    running = static_cast<T>(running + exp_wide(a[c] - top));
    if (threshold < running) return ActionChoice{c, c != greedy};
  }
  return ActionChoice{classes - 1, classes - 1 != greedy};  // rounding left threshold at the very top
}

// The reward is 1 for the true class and 0 otherwise; the RPE is delta = r - a[s].
template <typename T>
BP_HD T reward_for(int action, int label) {
  return action == label ? T(1) : T(0);
}

// Per-sample BrainProp loss 0.5 * delta^2 (the batch loss is its mean).
template <typename T>
BP_HD T brainprop_sample_loss(T delta) {
  return T(0.5) * delta * delta;
}

// Softmax cross-entropy for one row: writes dL/da = softmax(a) - onehot(label) and
// returns -log softmax(a)[label], computed stably from the row maximum.
template <typename T>
BP_HD T softmax_xent_row(const T* a, int classes, int label, T* grad) {
  T top = a[0];
  for (int c = 1; c < classes; ++c) top = a[c] > top ? a[c] : top;
  T total = T(0);
  for (int c = 0; c < classes; ++c) total = static_cast<T>(total + exp_wide(a[c] - top));
  const T log_total = static_cast<T>(log_wide(total));
  for (int c = 0; c < classes; ++c)
    grad[c] = static_cast<T>(exp_wide(a[c] - top - log_total) - (c == label ? 1.0 : 0.0));
  return log_total - (a[label] - top);
}

}  // namespace bp
