// Plain SGD with Keras-convention L2 (the loss gains l2 * sum(w^2), so the gradient
// gains 2 * l2 * w), folded into one in-place update  w <- decay * w - step * g.
#pragma once
#include "hd.h"

namespace bp {

struct SgdCoefficients {
  double decay;  // 1 - lr * 2 * l2: multiplies the old weight (a GEMM's beta)
  double step;   // lr / batch: multiplies the summed per-sample gradient (a GEMM's -alpha)
};

BP_HD SgdCoefficients sgd_coefficients(double lr, double l2, int batch) {
  return SgdCoefficients{1.0 - lr * 2.0 * l2, lr / static_cast<double>(batch)};
}

template <typename T>
BP_HD T sgd_apply(T weight, T summed_gradient, SgdCoefficients k) {
  return static_cast<T>(k.decay) * weight - static_cast<T>(k.step) * summed_gradient;
}

}  // namespace bp
