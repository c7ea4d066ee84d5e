// Finite-difference gradient checks in float64 for every layer type, inside small nets so
// each layer's feedback (backward-data) is checked through the parameters below it and its
// own update directly: conv2d ('same'/'valid', strides, bias), local2d ('valid'/'same'),
// batchnorm (training mode), maxpool2d, dropout, dense, relu, flatten. EBP's cross-entropy
// and BrainProp's loss (actions held fixed) both drive the check.
#include <gtest/gtest.h>

#include <random>

#include "gradient_check.h"
#include "math/heads.h"

namespace bp {
namespace {

struct NetCase {
  const char* name;
  Shape input;  // H, W, C
  std::vector<LayerSpec> layers;
};

LayerSpec conv(const char* type, int filters, int k, int stride, const char* padding, bool bias = false,
               double l2 = 0.0) {
  LayerSpec s;
  s.type = type;
  s.filters = filters;
  s.kernel_h = s.kernel_w = k;
  s.stride_h = s.stride_w = stride;
  s.padding = padding;
  s.bias = bias;
  s.init_std = 0.4;
  s.l2 = l2;
  return s;
}
LayerSpec simple(const char* type) {
  LayerSpec s;
  s.type = type;
  return s;
}
LayerSpec dense(int units, bool bias = false) {
  LayerSpec s;
  s.type = "dense";
  s.units = units;
  s.bias = bias;
  s.init_std = 0.3;
  return s;
}
LayerSpec dropout(double rate) {
  LayerSpec s = simple("dropout");
  s.rate = rate;
  return s;
}
LayerSpec pool(int size, int stride) {
  LayerSpec s = simple("maxpool2d");
  s.pool = size;
  s.pool_stride = stride;
  return s;
}

std::vector<NetCase> cases() {
  return {
      {"conv_same_bn_then_conv_valid_stride2", {7, 6, 2},
       {conv("conv2d", 3, 3, 1, "same"), simple("relu"), simple("batchnorm"),
        conv("conv2d", 2, 3, 2, "valid", false, 0.01), simple("flatten")}},
      {"conv_same_stride2_bias_dropout_dense", {6, 7, 2},
       {conv("conv2d", 3, 3, 2, "same", true), simple("relu"), dropout(0.4), simple("flatten"),
        dense(5, true), simple("relu")}},
      {"local_valid_then_local_same_stride2_maxpool", {7, 7, 2},
       {conv("local2d", 3, 3, 1, "valid", true, 0.02), simple("relu"),
        conv("local2d", 2, 2, 2, "same"), simple("relu"), pool(2, 1), simple("flatten")}},
      {"conv_bn_pool_dropout_local_bn_dense", {8, 8, 1},
       {conv("conv2d", 2, 3, 1, "same"), simple("relu"), simple("batchnorm"), pool(2, 2),
        dropout(0.5), conv("local2d", 2, 2, 1, "valid"), simple("relu"), simple("batchnorm"),
        simple("flatten"), dense(4), simple("relu"), simple("batchnorm")}},
  };
}

constexpr int kBatch = 4, kClasses = 3;

class LayerGradient : public ::testing::TestWithParam<std::tuple<int, bool>> {};

TEST_P(LayerGradient, UpdateEqualsFiniteDifferences) {
  const int index = std::get<0>(GetParam());
  const bool brainprop = std::get<1>(GetParam());  // a plain local: lambdas capture it
  const NetCase c = cases()[size_t(index)];
  SCOPED_TRACE(c.name);
  ModelSpec spec;
  spec.name = c.name;
  spec.layers = c.layers;
  spec.output = dense(0);
  auto be = make_cpu_backend(2);
  Net net(spec, c.input, kClasses, *be, kBatch, DType::F64, 5);
  Net probe(spec, c.input, kClasses, *be, kBatch, DType::F64, 5);

  std::mt19937_64 gen(uint64_t(index) + 100);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  Tensor x = be->empty(batch_shape(kBatch, c.input), DType::F64);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<double>()[i] = unit(gen);
  std::vector<int32_t> y(kBatch);
  for (auto& v : y) v = int32_t(gen() % kClasses);
  Tensor labels = be->empty({kBatch}, DType::I32);
  be->copy_from_host(labels, y.data());
  Tensor stats = be->empty({kStatCount}, DType::F64);
  be->fill(stats, 0.0);

  const auto l2_of = [&](const std::string& name) {
    // Layer names are <type><n>; look the spec up by counting layers of the same type.
    std::map<std::string, int> seen;
    for (const LayerSpec& s : c.layers) {
      const std::string layer = s.type + std::to_string(++seen[s.type]);
      if (name.rfind(layer + ".", 0) == 0) return s.l2;
    }
    return 0.0;
  };

  const uint64_t step = 3;  // dropout masks are keyed by the step: the probe uses the same one
  const double lr = 0.5;
  const auto before = test::snapshot(net);
  const Tensor logits = net.forward(x, true, step);
  std::vector<int32_t> actions(kBatch);
  if (brainprop) {
    Tensor action = be->empty({kBatch}, DType::I32), err = be->empty({kBatch}, DType::F64);
    be->brainprop_head(logits, labels, {0.5f, 9, step}, action, err, stats);
    actions.assign(action.data<int32_t>(), action.data<int32_t>() + kBatch);
    net.backward_selected(action, err, {lr, kBatch});
  } else {
    Tensor grad = be->empty({kBatch, kClasses}, DType::F64);
    be->softmax_xent_head(logits, labels, grad, stats);
    net.backward(grad, {lr, kBatch});
  }
  const auto loss = [&] {
    const Tensor a = probe.forward(x, true, step);
    double total = 0;
    for (int b = 0; b < kBatch; ++b) {
      const double* row = a.data<double>() + b * kClasses;
      if (brainprop) {
        const double r = actions[size_t(b)] == y[size_t(b)] ? 1.0 : 0.0;
        total += 0.5 * (r - row[actions[size_t(b)]]) * (r - row[actions[size_t(b)]]);
      } else {
        double grad[kClasses];
        total += softmax_xent_row(row, kClasses, y[size_t(b)], grad);
      }
    }
    return total / kBatch + test::l2_penalty(probe, l2_of);
  };
  EXPECT_GT(test::expect_update_is_gradient(net, probe, before, lr, loss), 20);
}

INSTANTIATE_TEST_SUITE_P(Nets, LayerGradient,
                         ::testing::Combine(::testing::Range(0, 4), ::testing::Bool()),
                         [](const auto& param_info) {
                           return std::string(cases()[size_t(std::get<0>(param_info.param))].name) +
                                  (std::get<1>(param_info.param) ? "_brainprop" : "_ebp");
                         });

}  // namespace
}  // namespace bp
