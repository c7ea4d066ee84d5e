// Batch normalisation over all axes but the channels (Keras BatchNormalization, axis -1):
// batch statistics in training, moving averages at evaluation; gamma and beta learned by
// the same in-place SGD as the weights (no L2, as in the reference).
#include "model/layer.h"

namespace bp {
namespace {

class BatchNormLayer final : public Layer {
 public:
  explicit BatchNormLayer(const LayerSpec& spec) : momentum_(spec.momentum), epsilon_(spec.epsilon) {}

  std::string type() const override { return "batchnorm"; }
  Shape output_shape() const override { return shape_; }

  void build(Backend& be, const Shape& input_shape, int max_batch, DType dtype, uint64_t,
             int) override {
    shape_ = input_shape;
    const int64_t channels = input_shape.back();
    auto make = [&](double value) {
      Tensor t = be.empty({channels}, dtype);
      be.fill(t, value);
      return t;
    };
    gamma_ = make(1.0);
    beta_ = make(0.0);
    running_mean_ = make(0.0);
    running_var_ = make(1.0);
    saved_mean_ = make(0.0);
    saved_inv_std_ = make(1.0);
    out_ = be.empty(batch_shape(max_batch, input_shape), dtype);
    dx_ = be.empty(batch_shape(max_batch, input_shape), dtype);
  }

  Tensor forward(Backend& be, const Tensor& x, const ForwardArgs& args) override {
    Tensor y = out_.rows(x.dim(0));
    if (args.training) {
      be.batchnorm_forward_train(x, gamma_, beta_, y, saved_mean_, saved_inv_std_, running_mean_,
                                 running_var_, momentum_, epsilon_);
    } else {
      be.batchnorm_forward_eval(x, gamma_, beta_, running_mean_, running_var_, epsilon_, y);
    }
    return y;
  }

  Tensor backward(Backend& be, const Tensor& x, const Tensor&, const Tensor& dy, bool need_dx,
                  const UpdateArgs& update) override {
    Tensor dx = need_dx ? dx_.rows(x.dim(0)) : Tensor();
    be.batchnorm_backward(dy, x, saved_mean_, saved_inv_std_, gamma_, beta_, need_dx ? &dx : nullptr,
                          1.0, update.lr / update.batch);
    return dx;
  }

  std::vector<NamedParam> params() override {
    return {{name_ + ".gamma", &gamma_}, {name_ + ".beta", &beta_}};
  }
  std::vector<NamedParam> buffers() override {
    return {{name_ + ".moving_mean", &running_mean_}, {name_ + ".moving_variance", &running_var_}};
  }

 private:
  double momentum_, epsilon_;
  Shape shape_;
  Tensor gamma_, beta_, running_mean_, running_var_, saved_mean_, saved_inv_std_, out_, dx_;
};

}  // namespace

std::unique_ptr<Layer> make_batchnorm_layer(const LayerSpec& spec) {
  return std::make_unique<BatchNormLayer>(spec);
}

}  // namespace bp
