// Dense (fully connected) layer: y = x W^T (+ b), W stored [out, in] as torch.nn.Linear.
// Besides the usual backward it has the BrainProp output-layer path, where only one unit
// per sample receives feedback: the feedback sent down is a row gather of W, and the
// update a scatter-add into the selected rows.
#pragma once
#include "model/layer.h"

namespace bp {

class DenseLayer final : public Layer {
 public:
  DenseLayer(int units, bool bias, double init_std, double l2)
      : units_(units), has_bias_(bias), init_std_(init_std), l2_(l2) {}

  std::string type() const override { return "dense"; }
  Shape output_shape() const override { return {units_}; }
  void build(Backend& be, const Shape& input_shape, int max_batch, DType dtype, uint64_t seed,
             int layer_index) override;
  Tensor forward(Backend& be, const Tensor& x, const ForwardArgs& args) override;
  Tensor backward(Backend& be, const Tensor& x, const Tensor& y, const Tensor& dy, bool need_dx,
                  const UpdateArgs& update) override;
  // BrainProp at the output: per sample b only unit action[b] carries the error err[b].
  // With gate_y (the output of a ReLU feeding this layer) the feedback comes back gated.
  Tensor backward_selected(Backend& be, const Tensor& x, const Tensor& action, const Tensor& err,
                           bool need_dx, const UpdateArgs& update, const Tensor* gate_y = nullptr);
  std::vector<NamedParam> params() override;
  void set_feedback(Feedback feedback, double decay) override {
    feedback_ = feedback;
    feedback_decay_ = decay;
  }
  std::vector<NamedParam> feedback_params() override;

  Tensor& weight() { return weight_; }
  Tensor& feedback_weight() { return fb_weight_; }  // B (empty with symmetric feedback)

 private:
  int units_;
  bool has_bias_;
  double init_std_, l2_;
  int64_t inputs_ = 0;
  Feedback feedback_ = Feedback::Symmetric;
  double feedback_decay_ = 0;
  Tensor weight_, bias_, out_, dx_;
  Tensor fb_weight_;  // B, fa and learned only

  // What the feedback goes down through: W, or B with fa/learned (unless the true gradient
  // is asked for); and whether B takes W's update this step.
  const Tensor& feedback_weights(const UpdateArgs& update) const {
    return feedback_ == Feedback::Symmetric || update.true_gradient ? weight_ : fb_weight_;
  }
  bool learns_feedback(const UpdateArgs& update) const {
    return feedback_ == Feedback::Learned && !update.true_gradient;
  }
};

}  // namespace bp
