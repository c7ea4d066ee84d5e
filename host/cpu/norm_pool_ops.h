// CPU batch normalisation, max pooling and dropout.
#pragma once
#include <cstdint>

#include "core/tensor.h"
#include "math/conv_geometry.h"

namespace bp::cpu {

void batchnorm_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& y,
                             Tensor& saved_mean, Tensor& saved_inv_std, Tensor& running_mean,
                             Tensor& running_var, double momentum, double epsilon);
void batchnorm_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                            const Tensor& running_mean, const Tensor& running_var, double epsilon,
                            Tensor& y);
void batchnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& saved_mean,
                        const Tensor& saved_inv_std, Tensor& gamma, Tensor& beta, Tensor* dx,
                        double decay, double step);
void maxpool2d_forward(const Tensor& x, Tensor& y, const Pool2dGeometry& g);
void maxpool2d_backward(const Tensor& dy, const Tensor& x, Tensor& dx, const Pool2dGeometry& g);
void dropout_apply(const Tensor& x, Tensor& y, float rate, uint64_t seed, uint64_t step,
                   uint32_t layer);

}  // namespace bp::cpu
