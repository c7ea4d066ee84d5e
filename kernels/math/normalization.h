// Batch normalisation (Keras semantics: batch statistics in training, moving averages with
// momentum at evaluation, learned scale gamma and offset beta), per element and per channel.
#pragma once
#include <cmath>

#include "hd.h"

namespace bp {

template <typename T>
BP_HD T batchnorm_apply(T x, T mean, T inv_std, T gamma, T beta) {
  return gamma * (x - mean) * inv_std + beta;
}

// Keras/TF: moving = moving * momentum + batch * (1 - momentum); the variance fed in is the
// unbiased (Bessel-corrected) batch variance, as TF's fused batch norm does.
template <typename T>
BP_HD T moving_average(T moving, T batch_value, T momentum) {
  return moving * momentum + batch_value * (T(1) - momentum);
}

// dL/dx for one element given the channel's sums over the batch:
// dx = gamma * inv_std / n * (n * dy - sum_dy - xhat * sum_dy_xhat).
template <typename T>
BP_HD T batchnorm_input_grad(T dy, T xhat, T gamma, T inv_std, T sum_dy, T sum_dy_xhat, T n) {
  return gamma * inv_std / n * (n * dy - sum_dy - xhat * sum_dy_xhat);
}

}  // namespace bp
