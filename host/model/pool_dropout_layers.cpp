// MaxPool2D (Keras 'valid' pooling) and Dropout (Keras rate semantics, Philox masks).
#include "model/layer.h"

namespace bp {
namespace {

class MaxPoolLayer final : public Layer {
 public:
  explicit MaxPoolLayer(const LayerSpec& spec) {
    geom_.pool = spec.pool;
    geom_.stride = spec.pool_stride;
  }
  std::string type() const override { return "maxpool2d"; }
  Shape output_shape() const override { return {geom_.out_h, geom_.out_w, geom_.channels}; }

  void build(Backend& be, const Shape& input_shape, int max_batch, DType dtype, uint64_t,
             int) override {
    BP_CHECK(input_shape.size() == 3, "maxpool2d layer " << name_ << " needs an HxWxC input, got "
                                                         << shape_string(input_shape));
    BP_CHECK(input_shape[0] >= geom_.pool && input_shape[1] >= geom_.pool,
             "maxpool2d layer " << name_ << ": pool " << geom_.pool << " is larger than the input "
                                << shape_string(input_shape));
    geom_ = make_pool_geometry(int(input_shape[0]), int(input_shape[1]), int(input_shape[2]),
                               geom_.pool, geom_.stride);
    out_ = be.empty(batch_shape(max_batch, output_shape()), dtype);
    dx_ = be.empty(batch_shape(max_batch, input_shape), dtype);
  }

  Tensor forward(Backend& be, const Tensor& x, const ForwardArgs&) override {
    Pool2dGeometry g = geom_;
    g.batch = int(x.dim(0));
    Tensor y = out_.rows(x.dim(0));
    be.maxpool2d_forward(x, y, g);
    return y;
  }

  Tensor backward(Backend& be, const Tensor& x, const Tensor&, const Tensor& dy, bool need_dx,
                  const UpdateArgs&) override {
    if (!need_dx) return Tensor();
    Pool2dGeometry g = geom_;
    g.batch = int(x.dim(0));
    Tensor dx = dx_.rows(x.dim(0));
    be.maxpool2d_backward(dy, x, dx, g);
    return dx;
  }

 private:
  Pool2dGeometry geom_;
  Tensor out_, dx_;
};

class DropoutLayer final : public Layer {
 public:
  explicit DropoutLayer(const LayerSpec& spec) : rate_(float(spec.rate)) {}
  std::string type() const override { return "dropout"; }
  Shape output_shape() const override { return shape_; }

  void build(Backend& be, const Shape& input_shape, int max_batch, DType dtype, uint64_t,
             int layer_index) override {
    shape_ = input_shape;
    layer_index_ = uint32_t(layer_index);
    out_ = be.empty(batch_shape(max_batch, input_shape), dtype);
  }

  // Identity at evaluation; in training the mask of (seed, step, layer), remembered for backward.
  Tensor forward(Backend& be, const Tensor& x, const ForwardArgs& args) override {
    if (!args.training || rate_ == 0.0f) {
      active_ = false;
      return x;
    }
    active_ = true;
    seed_ = args.seed;
    step_ = args.step;
    Tensor y = out_.rows(x.dim(0));
    be.dropout_apply(x, y, rate_, seed_, step_, layer_index_);
    return y;
  }

  // The same mask on the feedback, in place (dy is dead after this).
  Tensor backward(Backend& be, const Tensor&, const Tensor&, const Tensor& dy, bool need_dx,
                  const UpdateArgs&) override {
    if (!need_dx) return Tensor();
    Tensor dx = dy;
    if (active_) be.dropout_apply(dy, dx, rate_, seed_, step_, layer_index_);
    return dx;
  }

 private:
  float rate_;
  Shape shape_;
  uint32_t layer_index_ = 0;
  bool active_ = false;
  uint64_t seed_ = 0, step_ = 0;
  Tensor out_;
};

}  // namespace

std::unique_ptr<Layer> make_maxpool_layer(const LayerSpec& spec) {
  return std::make_unique<MaxPoolLayer>(spec);
}
std::unique_ptr<Layer> make_dropout_layer(const LayerSpec& spec) {
  return std::make_unique<DropoutLayer>(spec);
}

}  // namespace bp
