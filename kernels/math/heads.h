// Output heads, per sample: BrainProp's Max-Boltzmann action selection, reward and
// reward prediction error (RPE), REINFORCE's sampled policy gradient, and EBP's softmax
// cross-entropy. Shared by CPU and CUDA.
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

// Inverse-CDF sample from softmax(a) at temperature 1 with the uniform u in [0, 1); `greedy` is
// argmax(a), whose logit shifts the exponents for stability.
template <typename T>
BP_HD int softmax_sample(const T* a, int classes, int greedy, float u) {
  const T top = a[greedy];
  T total = T(0);
  for (int c = 0; c < classes; ++c) total = static_cast<T>(total + exp_wide(a[c] - top));
  const T threshold = static_cast<T>(u) * total;
  T running = T(0);
  for (int c = 0; c < classes; ++c) {
    running = static_cast<T>(running + exp_wide(a[c] - top));
    if (threshold < running) return c;
  }
  return classes - 1;  // rounding left threshold at the very top
}

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
  const int c = softmax_sample(a, classes, greedy, uniform_from_bits(r.v[1]));
  return ActionChoice{c, c != greedy};
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

// REINFORCE: the action is a sample from the softmax policy pi = softmax(a), drawn from the same
// Philox stream and counter as BrainProp's exploration (seed, step, sample), so CPU and GPU
// pick the same actions.
template <typename T>
BP_HD int reinforce_select(const T* a, int classes, uint64_t seed, uint64_t step, uint32_t sample) {
  const Philox4 r = philox_draw(seed, RngStream::kAction, sample, static_cast<uint32_t>(step),
                                static_cast<uint32_t>(step >> 32));
  return softmax_sample(a, classes, argmax_row(a, classes), uniform_from_bits(r.v[1]));
}

// One sample of REINFORCE with a reward baseline: for the per-sample loss
// L = -(r - b) log pi(s), writes dL/da = -(r - b) (onehot(s) - pi) and returns L.
// The baseline b is a constant here (it does not depend on this sample's action), so the
// gradient stays unbiased; it only lowers the variance.
template <typename T>
BP_HD T reinforce_row(const T* a, int classes, int action, T reward, T baseline, T* grad) {
  T top = a[0];
  for (int c = 1; c < classes; ++c) top = a[c] > top ? a[c] : top;
  T total = T(0);
  for (int c = 0; c < classes; ++c) total = static_cast<T>(total + exp_wide(a[c] - top));
  const T log_total = static_cast<T>(log_wide(total));
  const T advantage = reward - baseline;
  for (int c = 0; c < classes; ++c) {
    const T pi = static_cast<T>(exp_wide(a[c] - top - log_total));
    grad[c] = -advantage * ((c == action ? T(1) : T(0)) - pi);
  }
  return -advantage * (a[action] - top - log_total);
}

// The running-average reward baseline, moved once per step by the batch's mean reward:
// b <- b + rate * (mean_r - b). Updated after the step's gradient used the old b.
BP_HD double reinforce_baseline_update(double baseline, double reward_sum, int64_t batch,
                                       double rate) {
  return batch > 0 ? baseline + rate * (reward_sum / double(batch) - baseline) : baseline;
}

}  // namespace bp
