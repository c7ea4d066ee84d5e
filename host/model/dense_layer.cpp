#include "model/dense_layer.h"

#include "math/sgd.h"

namespace bp {

void DenseLayer::build(Backend& be, const Shape& input_shape, int max_batch, DType dtype,
                       uint64_t seed, int layer_index) {
  BP_CHECK(input_shape.size() == 1, "dense layer " << name_ << " needs a flat input, got "
                                                   << shape_string(input_shape)
                                                   << " (add a flatten layer before it)");
  inputs_ = input_shape[0];
  weight_ = be.empty({units_, inputs_}, dtype);
  init_normal(be, weight_, init_std_, seed, layer_index);
  if (feedback_ != Feedback::Symmetric) {
    fb_weight_ = be.empty({units_, inputs_}, dtype);
    init_normal(be, fb_weight_, init_std_, seed, layer_index, RngStream::kFeedbackInit);
  }
  if (has_bias_) {
    bias_ = be.empty({units_}, dtype);
    be.fill(bias_, 0.0);
  }
  out_ = be.empty({max_batch, units_}, dtype);
  dx_ = be.empty({max_batch, inputs_}, dtype);
}

Tensor DenseLayer::forward(Backend& be, const Tensor& x, const ForwardArgs&) {
  Tensor y = out_.rows(x.dim(0));
  be.gemm(false, true, 1.0, x, weight_, 0.0, y);  // y = x W^T
  if (has_bias_) be.add_row_bias(y, bias_);
  return y;
}

Tensor DenseLayer::backward(Backend& be, const Tensor& x, const Tensor&, const Tensor& dy,
                            bool need_dx, const UpdateArgs& update) {
  const int64_t batch = x.dim(0);
  Tensor dx;
  if (need_dx) {
    dx = dx_.rows(batch);
    // dx = dy W (dy B with fa/learned feedback), before W changes
    be.gemm(false, false, 1.0, dy, feedback_weights(update), 0.0, dx);
  }
  const SgdCoefficients k = layer_sgd(update, l2_);
  if (learns_feedback(update)) {
    // Kolen-Pollack: W and B take the same update and the same decay.
    const SgdCoefficients kw = layer_sgd(update, l2_ + feedback_decay_);
    be.gemm(true, false, -kw.step, dy, x, kw.decay, weight_);
    be.gemm(true, false, -kw.step, dy, x, kw.decay, fb_weight_);
  } else {
    be.gemm(true, false, -k.step, dy, x, k.decay, weight_);  // W = decay W - step dy^T x
  }
  if (has_bias_) be.update_bias(bias_, dy, k.decay, k.step);
  return dx;
}

Tensor DenseLayer::backward_selected(Backend& be, const Tensor& x, const Tensor& action,
                                     const Tensor& err, bool need_dx, const UpdateArgs& update,
                                     const Tensor* gate_y) {
  const int64_t batch = x.dim(0);
  Tensor dx;
  if (need_dx) {
    dx = dx_.rows(batch);
    // phi^{N-1} = W[s, :] (B[s, :] with fa/learned feedback), times the error (and the gate
    // of the ReLU below, when fused)
    const Tensor& w = feedback_weights(update);
    if (gate_y)
      be.gather_rows_scaled_gated(w, action, err, *gate_y, dx);
    else
      be.gather_rows_scaled(w, action, err, dx);
  }
  const SgdCoefficients k = layer_sgd(update, l2_);
  if (learns_feedback(update)) {
    const SgdCoefficients kw = layer_sgd(update, l2_ + feedback_decay_);
    be.scatter_update_rows(weight_, action, err, x, kw.decay, kw.step);
    be.scatter_update_rows(fb_weight_, action, err, x, kw.decay, kw.step);
  } else {
    be.scatter_update_rows(weight_, action, err, x, k.decay, k.step);
  }
  if (has_bias_) be.scatter_update_bias(bias_, action, err, k.decay, k.step);
  return dx;
}

std::vector<NamedParam> DenseLayer::params() {
  std::vector<NamedParam> p{{name_ + ".weight", &weight_}};
  if (has_bias_) p.push_back({name_ + ".bias", &bias_});
  return p;
}

std::vector<NamedParam> DenseLayer::feedback_params() {
  if (feedback_ == Feedback::Symmetric) return {};
  return {{name_ + ".feedback", &fb_weight_}};
}

}  // namespace bp
