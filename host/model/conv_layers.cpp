// Conv2D (shared weights [F, kh, kw, C], as cuDNN's NHWC filter layout) and
// LocallyConnected2D (one [F, kh*kw*C] filter bank per output pixel, no sharing), NHWC.
// Both: the feedback for the layer below first, then the update written into the weights.
#include "math/sgd.h"
#include "model/layer.h"

namespace bp {
namespace {

class ConvLikeLayer final : public Layer {
 public:
  explicit ConvLikeLayer(const LayerSpec& spec) : spec_(spec), local_(spec.type == "local2d") {}

  std::string type() const override { return spec_.type; }
  Shape output_shape() const override { return {geom_.out_h, geom_.out_w, geom_.out_c}; }

  void build(Backend& be, const Shape& input_shape, int max_batch, DType dtype, uint64_t seed,
             int layer_index) override {
    BP_CHECK(input_shape.size() == 3, spec_.type << " layer " << name_ << " needs an HxWxC input, got "
                                                 << shape_string(input_shape));
    geom_ = make_conv_geometry(int(input_shape[0]), int(input_shape[1]), int(input_shape[2]),
                               spec_.filters, spec_.kernel_h, spec_.kernel_w, spec_.stride_h,
                               spec_.stride_w, spec_.padding == "same");
    BP_CHECK(geom_.out_h > 0 && geom_.out_w > 0,
             spec_.type << " layer " << name_ << ": a " << spec_.kernel_h << "x" << spec_.kernel_w
                        << " 'valid' kernel does not fit the " << shape_string(input_shape) << " input");
    const Shape wshape = local_ ? Shape{geom_.positions(), geom_.out_c, geom_.patch_size()}
                                : Shape{geom_.out_c, geom_.kernel_h, geom_.kernel_w, geom_.in_c};
    weight_ = be.empty(wshape, dtype);
    init_normal(be, weight_, spec_.init_std, seed, layer_index);
    if (feedback_ != Feedback::Symmetric) {
      fb_weight_ = be.empty(wshape, dtype);
      init_normal(be, fb_weight_, spec_.init_std, seed, layer_index, RngStream::kFeedbackInit);
    }
    if (spec_.bias) {
      // Keras: one bias per filter for Conv2D, per output pixel and filter for LocallyConnected2D.
      bias_ = be.empty(local_ ? Shape{geom_.positions() * geom_.out_c} : Shape{geom_.out_c}, dtype);
      be.fill(bias_, 0.0);
    }
    out_ = be.empty(batch_shape(max_batch, output_shape()), dtype);
    dx_ = be.empty(batch_shape(max_batch, input_shape), dtype);
  }

  Tensor forward(Backend& be, const Tensor& x, const ForwardArgs&) override {
    Conv2dGeometry g = geom_;
    g.batch = int(x.dim(0));
    Tensor y = out_.rows(x.dim(0));
    if (local_) {
      be.local2d_forward(x, weight_, y, g);
    } else {
      be.conv2d_forward(x, weight_, y, g);
    }
    if (spec_.bias) be.add_row_bias(y, bias_);
    return y;
  }

  Tensor backward(Backend& be, const Tensor& x, const Tensor&, const Tensor& dy, bool need_dx,
                  const UpdateArgs& update) override {
    Conv2dGeometry g = geom_;
    g.batch = int(x.dim(0));
    Tensor dx;
    if (need_dx) {
      dx = dx_.rows(x.dim(0));
      // Through W, or through B with fa/learned feedback.
      const Tensor& w = feedback_ == Feedback::Symmetric || update.true_gradient ? weight_ : fb_weight_;
      if (local_) {
        be.local2d_backward_data(dy, w, dx, g);
      } else {
        be.conv2d_backward_data(dy, w, dx, g);
      }
    }
    const SgdCoefficients k = layer_sgd(update, spec_.l2);
    // Kolen-Pollack: W and B take the same update and the same decay.
    const bool learns_feedback = feedback_ == Feedback::Learned && !update.true_gradient;
    const SgdCoefficients kw = learns_feedback ? layer_sgd(update, spec_.l2 + feedback_decay_) : k;
    if (local_) {
      be.local2d_update(weight_, dy, x, g, kw.decay, kw.step);
      if (learns_feedback) be.local2d_update(fb_weight_, dy, x, g, kw.decay, kw.step);
    } else {
      be.conv2d_update(weight_, dy, x, g, kw.decay, kw.step);
      if (learns_feedback) be.conv2d_update(fb_weight_, dy, x, g, kw.decay, kw.step);
    }
    if (spec_.bias) be.update_bias(bias_, dy, k.decay, k.step);
    return dx;
  }

  std::vector<NamedParam> params() override {
    std::vector<NamedParam> p{{name_ + ".weight", &weight_}};
    if (spec_.bias) p.push_back({name_ + ".bias", &bias_});
    return p;
  }
  void set_feedback(Feedback feedback, double decay) override {
    feedback_ = feedback;
    feedback_decay_ = decay;
  }
  std::vector<NamedParam> feedback_params() override {
    if (feedback_ == Feedback::Symmetric) return {};
    return {{name_ + ".feedback", &fb_weight_}};
  }

 private:
  LayerSpec spec_;
  bool local_;
  Feedback feedback_ = Feedback::Symmetric;
  double feedback_decay_ = 0;
  Conv2dGeometry geom_;
  Tensor weight_, bias_, out_, dx_;
  Tensor fb_weight_;  // B, fa and learned only
};

}  // namespace

std::unique_ptr<Layer> make_conv_layer(const LayerSpec& spec) {
  return std::make_unique<ConvLikeLayer>(spec);
}

}  // namespace bp
