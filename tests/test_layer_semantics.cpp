// Layer semantics against values computed by hand: TensorFlow 'same'/'valid' geometry,
// batch norm in training and evaluation (Keras momentum/epsilon), max pooling, dropout rates,
// and the shipped conv/loccon/deep models building for every data set shape they are paired with.
#include <gtest/gtest.h>

#include <cmath>

#include "math/dropout.h"
#include "model/net.h"

namespace bp {
namespace {

TEST(ConvGeometry, MatchesTensorFlowPadding) {
  // 28 -> 'same' stride 2 -> 14 with the extra padding row at the bottom (pad_top 0).
  Conv2dGeometry g = make_conv_geometry(28, 28, 1, 32, 3, 3, 2, 2, true);
  EXPECT_EQ(g.out_h, 14);
  EXPECT_EQ(g.pad_top, 0);
  g = make_conv_geometry(32, 32, 3, 32, 3, 3, 1, 1, true);
  EXPECT_EQ(g.out_h, 32);
  EXPECT_EQ(g.pad_top, 1);
  g = make_conv_geometry(32, 32, 3, 32, 3, 3, 2, 2, true);
  EXPECT_EQ(g.out_h, 16);
  EXPECT_EQ(g.pad_top, 0);
  g = make_conv_geometry(30, 30, 32, 32, 3, 3, 2, 2, false);  // loccon's second layer on CIFAR
  EXPECT_EQ(g.out_h, 14);
  g = make_conv_geometry(26, 26, 32, 32, 3, 3, 2, 2, false);  // and on MNIST
  EXPECT_EQ(g.out_h, 12);
}

struct BnFixture {
  std::unique_ptr<Backend> be = make_cpu_backend(1);
  ModelSpec spec;
  BnFixture() {
    LayerSpec bn;
    bn.type = "batchnorm";
    spec.name = "bn";
    spec.layers = {bn, {"flatten"}};
    spec.output = {"dense", 0, false, 0.1, 0};
  }
};

TEST(BatchNorm, TrainingUsesBatchStatisticsAndMovesTheAverages) {
  BnFixture f;
  Net net(f.spec, {1, 1, 2}, 2, *f.be, 4, DType::F64, 1);
  // Channel 0: 1, 2, 3, 6 (mean 3, biased var 3.5, unbiased 14/3); channel 1: constant 5.
  const double xs[] = {1, 5, 2, 5, 3, 5, 6, 5};
  Tensor x = f.be->empty({4, 1, 1, 2}, DType::F64);
  f.be->copy_from_host(x, xs);
  net.forward(x, true);
  std::map<std::string, std::vector<uint8_t>> state = net.state();
  auto values = [&](const std::string& name) {
    const auto& bytes = state.at(name);
    return std::vector<double>(reinterpret_cast<const double*>(bytes.data()),
                               reinterpret_cast<const double*>(bytes.data() + bytes.size()));
  };
  const auto mean = values("batchnorm1.moving_mean"), var = values("batchnorm1.moving_variance");
  EXPECT_NEAR(mean[0], 0.99 * 0 + 0.01 * 3, 1e-12);
  EXPECT_NEAR(mean[1], 0.01 * 5, 1e-12);
  EXPECT_NEAR(var[0], 0.99 * 1 + 0.01 * 14.0 / 3.0, 1e-12);
  EXPECT_NEAR(var[1], 0.99 * 1 + 0.01 * 0, 1e-12);
  EXPECT_EQ(values("batchnorm1.gamma"), (std::vector<double>{1, 1}));
}

TEST(BatchNorm, NormalisesWithBatchStatsInTrainingAndMovingAveragesInEvaluation) {
  auto be = make_cpu_backend(1);
  const double xs[] = {1, 2, 3, 6};
  Tensor x = be->empty({4, 1}, DType::F64), y = be->empty({4, 1}, DType::F64);
  be->copy_from_host(x, xs);
  Tensor gamma = be->empty({1}, DType::F64), beta = be->empty({1}, DType::F64);
  Tensor mean = be->empty({1}, DType::F64), inv = be->empty({1}, DType::F64);
  Tensor rm = be->empty({1}, DType::F64), rv = be->empty({1}, DType::F64);
  be->fill(gamma, 2.0);
  be->fill(beta, 0.5);
  be->fill(rm, 1.0);
  be->fill(rv, 4.0);
  be->batchnorm_forward_train(x, gamma, beta, y, mean, inv, rm, rv, 0.99, 1e-3);
  for (int i = 0; i < 4; ++i)
    EXPECT_NEAR(y.data<double>()[i], 2.0 * (xs[i] - 3.0) / std::sqrt(3.5 + 1e-3) + 0.5, 1e-12);
  be->fill(rm, 1.0);
  be->fill(rv, 4.0);
  be->batchnorm_forward_eval(x, gamma, beta, rm, rv, 1e-3, y);
  for (int i = 0; i < 4; ++i)
    EXPECT_NEAR(y.data<double>()[i], 2.0 * (xs[i] - 1.0) / std::sqrt(4.0 + 1e-3) + 0.5, 1e-12);
}

TEST(MaxPool, TakesTheWindowMaximumAndRoutesFeedbackToIt) {
  auto be = make_cpu_backend(1);
  // One 4x4 single-channel image, 2x2 windows.
  const float xs[] = {1, 5, 2, 0, 3, 4, 8, 1, 0, 0, 1, 1, 9, 0, 1, 7};
  Tensor x = be->empty({1, 4, 4, 1}, DType::F32), y = be->empty({1, 2, 2, 1}, DType::F32);
  be->copy_from_host(x, xs);
  Pool2dGeometry g{1, 4, 4, 1, 2, 2, 2, 2};
  be->maxpool2d_forward(x, y, g);
  EXPECT_EQ(std::vector<float>(y.data<float>(), y.data<float>() + 4), (std::vector<float>{5, 8, 9, 7}));
  const float dys[] = {1, 2, 3, 4};
  Tensor dy = be->empty({1, 2, 2, 1}, DType::F32), dx = be->empty({1, 4, 4, 1}, DType::F32);
  be->copy_from_host(dy, dys);
  be->fill(dx, -1.0);  // poisoned: every element must be written
  be->maxpool2d_backward(dy, x, dx, g);
  const std::vector<float> expect = {0, 1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 3, 0, 0, 4};
  EXPECT_EQ(std::vector<float>(dx.data<float>(), dx.data<float>() + 16), expect);
}

TEST(Dropout, DropsTheRateAndScalesTheRest) {
  for (float rate : {0.3f, 0.8f}) {
    const int n = 200000;
    int dropped = 0;
    double sum = 0;
    for (int i = 0; i < n; ++i) {
      const float m = dropout_multiplier(rate, 7, 11, 2, uint64_t(i));
      dropped += m == 0.0f;
      sum += m;
      if (m != 0.0f) {
        EXPECT_FLOAT_EQ(m, 1.0f / (1.0f - rate));
      }
    }
    EXPECT_NEAR(double(dropped) / n, rate, 5 * std::sqrt(rate * (1 - rate) / n));
    EXPECT_NEAR(sum / n, 1.0, 0.02) << "the expected activation is preserved";
  }
  int same = 0, differ = 0;
  for (int i = 0; i < 10000; ++i) {
    same += dropout_multiplier(0.5f, 7, 11, 2, uint64_t(i)) == dropout_multiplier(0.5f, 7, 11, 2, uint64_t(i));
    differ += dropout_multiplier(0.5f, 7, 11, 2, uint64_t(i)) != dropout_multiplier(0.5f, 7, 12, 2, uint64_t(i));
  }
  EXPECT_EQ(same, 10000);
  EXPECT_GT(differ, 4000) << "each step draws a new mask";
}

TEST(Dropout, IsTheIdentityAtEvaluation) {
  auto be = make_cpu_backend(1);
  ModelSpec spec;
  spec.name = "d";
  LayerSpec d;
  d.type = "dropout";
  d.rate = 0.5;
  spec.layers = {{"flatten"}, d};
  spec.output = {"dense", 0, false, 0.5, 0};
  Net net(spec, {1, 1, 8}, 2, *be, 2, DType::F32, 3);
  Tensor x = be->empty({2, 1, 1, 8}, DType::F32);
  be->fill(x, 1.0);
  std::vector<float> eval_a(4), eval_b(4), train(4);
  be->copy_to_host(net.forward(x, false), eval_a.data());
  be->copy_to_host(net.forward(x, false), eval_b.data());
  be->copy_to_host(net.forward(x, true, 5), train.data());
  EXPECT_EQ(eval_a, eval_b);
  EXPECT_NE(eval_a, train);
}

TEST(PaperModels, BuildForEveryDataSetTheyArePairedWith) {
  auto be = make_cpu_backend(1);
  struct Pair { const char* model; Shape input; int classes; int64_t params; };
  // Parameter counts by hand, e.g. conv on MNIST: 3*3*1*32 + 3*3*32*32 + 2*2*32 (BN gamma, beta)
  // + 14*14*32*500 + 500*10.
  const Pair pairs[] = {
      {"conv", {28, 28, 1}, 10, 288 + 9216 + 128 + 6272 * 500 + 5000},
      {"conv", {32, 32, 3}, 100, 864 + 9216 + 128 + 8192 * 500 + 50000},
      {"loccon", {28, 28, 1}, 10, 26 * 26 * 32 * 9 + 12 * 12 * 32 * 288 + 128 + 4608 * 500 + 5000},
      {"loccon", {32, 32, 3}, 10, 30 * 30 * 32 * 27 + 14 * 14 * 32 * 288 + 128 + 6272 * 500 + 5000},
      {"deep", {32, 32, 3}, 10, 1728 + 36864 + 73728 + 147456 * 4 + 2 * (64 * 2 + 128 * 5) + 2048 * 500 + 5000},
      {"deep", {64, 64, 3}, 200, 1728 + 36864 + 73728 + 147456 * 4 + 2 * (64 * 2 + 128 * 5) + 8192 * 500 + 100000},
  };
  for (const Pair& p : pairs) {
    const ModelSpec spec = load_model(p.model);
    Net net(spec, p.input, p.classes, *be, 2, DType::F32, 1);
    int64_t count = 0;
    for (const NamedParam& np : net.params()) count += np.tensor->numel();
    EXPECT_EQ(count, p.params) << p.model << " on " << shape_string(p.input);
  }
  EXPECT_EQ(load_model("loccon").training.batch_size, 32);
  EXPECT_EQ(load_model("deep").layers[0].l2, 5e-4);
}

}  // namespace
}  // namespace bp
