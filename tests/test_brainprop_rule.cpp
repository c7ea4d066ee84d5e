// BrainProp's weight update, checked three ways on a small float64 net:
//  (a) it equals the gradient of the BrainProp loss, by central finite differences;
//  (b) it equals the paper's explicit rule (Eqs. 11-15): phi at the output is one-hot,
//      phi one layer down is a row of W, below phi = W^T (phi * g), dW = lr * delta * phi * g * y;
//  (c) it equals EBP's update restricted to the selected unit (a dense output error that is
//      zero except at s_b).
// The same finite-difference check covers EBP's softmax cross-entropy, biases and L2.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "gradient_check.h"
#include "model/net.h"
#include "math/heads.h"

namespace bp {
namespace {

constexpr int kBatch = 5, kInputs = 6, kClasses = 4;

ModelSpec small_spec(bool bias, double l2) {
  ModelSpec spec;
  spec.name = "small";
  spec.layers = {{"flatten"}, {"dense", 7, bias, 0.6, l2}, {"relu"},
                 {"dense", 5, bias, 0.6, l2}, {"relu"}};
  spec.output = {"dense", 0, bias, 0.6, l2};
  return spec;
}

struct Fixture {
  std::unique_ptr<Backend> be = make_cpu_backend(2);
  Tensor x, labels, action, err, stats;
  std::vector<int32_t> y;

  explicit Fixture(uint64_t data_seed) {
    std::mt19937_64 gen(data_seed);
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    std::vector<double> xs(kBatch * kInputs);
    for (double& v : xs) v = unit(gen);
    y.resize(kBatch);
    for (int32_t& v : y) v = static_cast<int32_t>(gen() % kClasses);
    x = be->empty({kBatch, 1, 1, kInputs}, DType::F64);
    be->copy_from_host(x, xs.data());
    labels = be->empty({kBatch}, DType::I32);
    be->copy_from_host(labels, y.data());
    action = be->empty({kBatch}, DType::I32);
    err = be->empty({kBatch}, DType::F64);
    stats = be->empty({kStatCount}, DType::F64);
    be->fill(stats, 0.0);
  }
  std::unique_ptr<Net> net(const ModelSpec& spec, uint64_t seed = 7) {
    return std::make_unique<Net>(spec, Shape{1, 1, kInputs}, kClasses, *be, kBatch, DType::F64, seed);
  }
};

// BrainProp's loss with the actions held fixed: mean of 0.5 (r - a[s])^2, plus L2.
double brainprop_loss(Net& net, Fixture& f, const std::vector<int32_t>& actions, double l2) {
  const Tensor logits = net.forward(f.x, true);
  const double* a = logits.data<double>();
  double loss = 0;
  for (int b = 0; b < kBatch; ++b) {
    const double r = actions[b] == f.y[b] ? 1.0 : 0.0;
    loss += 0.5 * (r - a[b * kClasses + actions[b]]) * (r - a[b * kClasses + actions[b]]);
  }
  return loss / kBatch + test::l2_penalty(net, [l2](const std::string&) { return l2; });
}

double ebp_loss(Net& net, Fixture& f, double l2) {
  const Tensor logits = net.forward(f.x, true);
  std::vector<double> grad(kClasses);
  double loss = 0;
  for (int b = 0; b < kBatch; ++b)
    loss += softmax_xent_row(logits.data<double>() + b * kClasses, kClasses, f.y[b], grad.data());
  return loss / kBatch + test::l2_penalty(net, [l2](const std::string&) { return l2; });
}

// The gradient checks compare central differences of the loss for every parameter element with
// (W_before - W_after) / lr of one update step (test::expect_update_is_gradient: relative
// tolerance 1e-6 on float64 with h = 1e-6), over the 6*7 + 7*5 + 5*4 = 97 weights at least.
constexpr int kMinChecked = 97;

class BrainPropGradient : public ::testing::TestWithParam<std::tuple<bool, double>> {};

TEST_P(BrainPropGradient, UpdateEqualsFiniteDifferenceGradientOfItsLoss) {
  const bool bias = std::get<0>(GetParam());
  const double l2 = std::get<1>(GetParam());  // a plain local: lambdas capture it
  Fixture f(11);
  auto net = f.net(small_spec(bias, l2));
  auto probe = f.net(small_spec(bias, l2));
  const auto before = test::snapshot(*net);
  const Tensor logits = net->forward(f.x, true);
  // epsilon 0.5 so the batch mixes greedy and exploratory actions.
  f.be->brainprop_head(logits, f.labels, {0.5f, 3, 0}, f.action, f.err, f.stats);
  const std::vector<int32_t> actions(f.action.data<int32_t>(), f.action.data<int32_t>() + kBatch);
  const double lr = 0.5;
  net->backward_selected(f.action, f.err, {lr, kBatch});
  EXPECT_GE(test::expect_update_is_gradient(*net, *probe, before, lr,
                                            [&] { return brainprop_loss(*probe, f, actions, l2); }, 1e-6),
            kMinChecked);
}

TEST_P(BrainPropGradient, EbpUpdateEqualsFiniteDifferenceGradientOfCrossEntropy) {
  const bool bias = std::get<0>(GetParam());
  const double l2 = std::get<1>(GetParam());  // a plain local: lambdas capture it
  Fixture f(12);
  auto net = f.net(small_spec(bias, l2));
  auto probe = f.net(small_spec(bias, l2));
  const auto before = test::snapshot(*net);
  Tensor grad = f.be->empty({kBatch, kClasses}, DType::F64);
  f.be->softmax_xent_head(net->forward(f.x, true), f.labels, grad, f.stats);
  const double lr = 0.5;
  net->backward(grad, {lr, kBatch});
  EXPECT_GE(test::expect_update_is_gradient(*net, *probe, before, lr,
                                            [&] { return ebp_loss(*probe, f, l2); }, 1e-6),
            kMinChecked);
}

INSTANTIATE_TEST_SUITE_P(BiasAndL2, BrainPropGradient,
                         ::testing::Values(std::make_tuple(false, 0.0), std::make_tuple(true, 0.0),
                                           std::make_tuple(false, 5e-4), std::make_tuple(true, 0.01)));

// Naive matrices for the explicit rule: W is [out][in].
using Matrix = std::vector<std::vector<double>>;
Matrix as_matrix(const Tensor& t) {
  Matrix m(static_cast<size_t>(t.dim(0)));
  for (int64_t r = 0; r < t.dim(0); ++r)
    m[size_t(r)].assign(t.data<double>() + r * t.dim(1), t.data<double>() + (r + 1) * t.dim(1));
  return m;
}
std::vector<double> matvec(const Matrix& w, const std::vector<double>& v) {
  std::vector<double> out(w.size(), 0.0);
  for (size_t i = 0; i < w.size(); ++i)
    for (size_t j = 0; j < v.size(); ++j) out[i] += w[i][j] * v[j];
  return out;
}

TEST(BrainPropRule, UpdateEqualsThePapersExplicitFeedbackRule) {
  Fixture f(13);
  auto net = f.net(small_spec(false, 0.0));
  auto params = net->params();
  ASSERT_EQ(params.size(), 3u);
  const Matrix w1 = as_matrix(*params[0].tensor), w2 = as_matrix(*params[1].tensor),
               w3 = as_matrix(*params[2].tensor);
  f.be->brainprop_head(net->forward(f.x, true), f.labels, {0.3f, 5, 9}, f.action, f.err, f.stats);
  const double lr = 0.25;
  net->backward_selected(f.action, f.err, {lr, kBatch});

  Matrix d1(w1.size(), std::vector<double>(w1[0].size(), 0.0)), d2 = Matrix(w2.size(), std::vector<double>(w2[0].size(), 0.0)),
         d3 = Matrix(w3.size(), std::vector<double>(w3[0].size(), 0.0));
  int active = 0, inactive = 0;
  for (int b = 0; b < kBatch; ++b) {
    const std::vector<double> y0(f.x.data<double>() + b * kInputs, f.x.data<double>() + (b + 1) * kInputs);
    const std::vector<double> a1 = matvec(w1, y0);
    std::vector<double> y1(a1.size()), g1(a1.size());
    for (size_t i = 0; i < a1.size(); ++i) g1[i] = a1[i] > 0, y1[i] = a1[i] > 0 ? a1[i] : 0;
    const std::vector<double> a2 = matvec(w2, y1);
    std::vector<double> y2(a2.size()), g2(a2.size());
    for (size_t i = 0; i < a2.size(); ++i) g2[i] = a2[i] > 0, y2[i] = a2[i] > 0 ? a2[i] : 0;
    for (double g : g1) (g > 0 ? active : inactive)++;
    const std::vector<double> a3 = matvec(w3, y2);
    const int s = f.action.data<int32_t>()[b];
    const double delta = (s == f.y[b] ? 1.0 : 0.0) - a3[size_t(s)];
    // Feedback ("attention"): one-hot at the output, a row of W3 one layer down, then W^T(phi g).
    const std::vector<double>& phi2 = w3[size_t(s)];
    std::vector<double> phi1(w2[0].size(), 0.0);
    for (size_t i = 0; i < phi1.size(); ++i)
      for (size_t k = 0; k < w2.size(); ++k) phi1[i] += w2[k][i] * phi2[k] * g2[k];
    for (size_t j = 0; j < y2.size(); ++j) d3[size_t(s)][j] += lr / kBatch * delta * y2[j];
    for (size_t i = 0; i < w2.size(); ++i)
      for (size_t j = 0; j < y1.size(); ++j) d2[i][j] += lr / kBatch * delta * phi2[i] * g2[i] * y1[j];
    for (size_t i = 0; i < w1.size(); ++i)
      for (size_t j = 0; j < y0.size(); ++j) d1[i][j] += lr / kBatch * delta * phi1[i] * g1[i] * y0[j];
  }
  EXPECT_GT(active, 0);
  EXPECT_GT(inactive, 0) << "the gates must be exercised both ways";
  const Matrix* before[] = {&w1, &w2, &w3};
  const Matrix* delta[] = {&d1, &d2, &d3};
  for (size_t p = 0; p < 3; ++p) {
    const Matrix after = as_matrix(*params[p].tensor);
    for (size_t i = 0; i < after.size(); ++i)
      for (size_t j = 0; j < after[i].size(); ++j)
        EXPECT_NEAR(after[i][j] - (*before[p])[i][j], (*delta[p])[i][j], 1e-12)
            << params[p].name << "[" << i << "," << j << "]";
  }
}

TEST(BrainPropRule, UpdateEqualsEbpUpdateRestrictedToTheSelectedUnit) {
  Fixture f(14);
  auto sparse = f.net(small_spec(true, 1e-3));
  auto dense = f.net(small_spec(true, 1e-3));
  f.be->brainprop_head(sparse->forward(f.x, true), f.labels, {0.5f, 1, 2}, f.action, f.err, f.stats);
  dense->forward(f.x, true);
  // The dense output error: zero except err[b] at the selected unit s_b.
  Tensor grad = f.be->empty({kBatch, kClasses}, DType::F64);
  f.be->fill(grad, 0.0);
  for (int b = 0; b < kBatch; ++b)
    grad.data<double>()[b * kClasses + f.action.data<int32_t>()[b]] = f.err.data<double>()[b];
  sparse->backward_selected(f.action, f.err, {0.3, kBatch});
  dense->backward(grad, {0.3, kBatch});
  const auto a = test::snapshot(*sparse), b = test::snapshot(*dense);
  for (size_t p = 0; p < a.size(); ++p)
    for (size_t i = 0; i < a[p].size(); ++i) EXPECT_NEAR(a[p][i], b[p][i], 1e-14);
}

TEST(BrainPropRule, OutputErrorIsMinusTheRewardPredictionError) {
  Fixture f(15);
  auto net = f.net(small_spec(false, 0.0));
  const Tensor logits = net->forward(f.x, true);
  f.be->brainprop_head(logits, f.labels, {0.5f, 2, 4}, f.action, f.err, f.stats);
  double loss = 0;
  for (int b = 0; b < kBatch; ++b) {
    const int s = f.action.data<int32_t>()[b];
    const double r = s == f.y[b] ? 1.0 : 0.0;
    const double delta = r - logits.data<double>()[b * kClasses + s];
    EXPECT_DOUBLE_EQ(f.err.data<double>()[b], -delta);
    loss += 0.5 * delta * delta;
  }
  EXPECT_NEAR(f.stats.data<double>()[kStatLoss], loss, 1e-12);
  EXPECT_EQ(f.stats.data<double>()[kStatSamples], kBatch);
}

}  // namespace
}  // namespace bp
