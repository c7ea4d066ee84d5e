// Parameter-free layers (ReLU, flatten), the layer factory and weight init.
#include <vector>

#include "math/philox.h"
#include "model/dense_layer.h"

namespace bp {
namespace {

class ReluLayer final : public Layer {
 public:
  std::string type() const override { return "relu"; }
  Shape output_shape() const override { return shape_; }
  void build(Backend& be, const Shape& input_shape, int max_batch, DType dtype, uint64_t,
             int) override {
    shape_ = input_shape;
    out_ = be.empty(batch_shape(max_batch, input_shape), dtype);
  }
  Tensor forward(Backend& be, const Tensor& x, const ForwardArgs&) override {
    Tensor y = out_.rows(x.dim(0));
    be.relu_forward(x, y);
    return y;
  }
  // The feedback is gated in place: dy is a buffer of the layer above, dead after this.
  Tensor backward(Backend& be, const Tensor&, const Tensor& y, const Tensor& dy, bool need_dx,
                  const UpdateArgs&) override {
    if (!need_dx) return Tensor();
    Tensor dx = dy;
    be.relu_feedback(dy, y, dx);
    return dx;
  }

 private:
  Shape shape_;
  Tensor out_;
};

class FlattenLayer final : public Layer {
 public:
  std::string type() const override { return "flatten"; }
  Shape output_shape() const override { return {shape_elements(shape_)}; }
  void build(Backend&, const Shape& input_shape, int, DType, uint64_t, int) override {
    shape_ = input_shape;
  }
  Tensor forward(Backend&, const Tensor& x, const ForwardArgs&) override {
    return x.reshaped({x.dim(0), x.row_elements()});
  }
  Tensor backward(Backend&, const Tensor& x, const Tensor&, const Tensor& dy, bool need_dx,
                  const UpdateArgs&) override {
    return need_dx ? dy.reshaped(x.shape()) : Tensor();
  }

 private:
  Shape shape_;
};

}  // namespace

void init_normal(Backend& be, Tensor& param, double std, uint64_t seed, int layer_index,
                 RngStream stream) {
  const int64_t n = param.numel();
  std::vector<double> values(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const Philox4 r = philox_draw(seed, stream, static_cast<uint32_t>(i),
                                  static_cast<uint32_t>(i >> 32), static_cast<uint32_t>(layer_index));
    values[size_t(i)] = std * normal_from_bits(r.v[0], r.v[1]);
  }
  if (param.dtype() == DType::F64) {
    be.copy_from_host(param, values.data());
  } else {
    BP_CHECK(param.dtype() == DType::F32, "init_normal: parameters must be float32 or float64");
    std::vector<float> narrow(values.begin(), values.end());
    be.copy_from_host(param, narrow.data());
  }
}

std::unique_ptr<Layer> make_layer(const LayerSpec& spec) {
  if (spec.type == "dense")
    return std::make_unique<DenseLayer>(spec.units, spec.bias, spec.init_std, spec.l2);
  if (spec.type == "relu") return std::make_unique<ReluLayer>();
  if (spec.type == "flatten") return std::make_unique<FlattenLayer>();
  if (spec.type == "conv2d" || spec.type == "local2d") return make_conv_layer(spec);
  if (spec.type == "batchnorm") return make_batchnorm_layer(spec);
  if (spec.type == "maxpool2d") return make_maxpool_layer(spec);
  if (spec.type == "dropout") return make_dropout_layer(spec);
  BP_FAIL("unknown layer type \"" << spec.type << "\"");
}

}  // namespace bp
