// Direct feedback alignment (--feedback dfa, docs/design.md "Feedback pathways"): the output
// error reaches each hidden weighted layer through its own fixed random D, injected at the top
// of the layer's segment. Checked against the explicit formula in float64 (both rules), the
// BrainProp row gather seen through a layer's update, dfa = fa for a single hidden layer, the
// checkpoint (D saved, resumed exactly, skipped by a net without D).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <random>
#include <vector>

#include "io/safetensors.h"
#include "model/model_spec.h"
#include "model/net.h"
#include "resume_checks.h"
#include "synthetic_data.h"
#include "test_helpers.h"
#include "train/trainer.h"

namespace bp {
namespace {

namespace fs = std::filesystem;
using Matrix = std::vector<std::vector<double>>;  // [rows][cols]

std::vector<double> host_values(Backend& be, const Tensor& t) {
  std::vector<double> v(size_t(t.numel()));
  be.copy_to_host(t, v.data());
  return v;
}

std::map<std::string, std::vector<double>> snapshot(Net& net) {
  std::map<std::string, std::vector<double>> out;
  for (const NamedParam& p : net.state_tensors()) out[p.name] = host_values(net.backend(), *p.tensor);
  return out;
}

Matrix as_matrix(const std::vector<double>& v, size_t rows, size_t cols) {
  Matrix m(rows, std::vector<double>(cols));
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < cols; ++c) m[r][c] = v[r * cols + c];
  return m;
}

// a [n, k] times b^T, b [m, k]: [n, m]
Matrix times_transposed(const Matrix& a, const Matrix& b) {
  Matrix c(a.size(), std::vector<double>(b.size(), 0.0));
  for (size_t i = 0; i < a.size(); ++i)
    for (size_t j = 0; j < b.size(); ++j)
      for (size_t k = 0; k < b[j].size(); ++k) c[i][j] += a[i][k] * b[j][k];
  return c;
}

// a [n, k] times b [k, m]: [n, m]
Matrix times(const Matrix& a, const Matrix& b) {
  Matrix c(a.size(), std::vector<double>(b[0].size(), 0.0));
  for (size_t i = 0; i < a.size(); ++i)
    for (size_t k = 0; k < b.size(); ++k)
      for (size_t j = 0; j < b[k].size(); ++j) c[i][j] += a[i][k] * b[k][j];
  return c;
}

Matrix relu(const Matrix& a) {
  Matrix r = a;
  for (auto& row : r)
    for (double& v : row) v = v > 0 ? v : 0;
  return r;
}

// feedback ⊙ (y > 0)
Matrix gated(const Matrix& feedback, const Matrix& y) {
  Matrix r = feedback;
  for (size_t i = 0; i < r.size(); ++i)
    for (size_t j = 0; j < r[i].size(); ++j) r[i][j] = y[i][j] > 0 ? r[i][j] : 0;
  return r;
}

// W - step * delta^T x
Matrix sgd(const Matrix& w, const Matrix& delta, const Matrix& x, double step) {
  Matrix r = w;
  for (size_t i = 0; i < w.size(); ++i)
    for (size_t j = 0; j < w[i].size(); ++j)
      for (size_t b = 0; b < x.size(); ++b) r[i][j] -= step * delta[b][i] * x[b][j];
  return r;
}

void expect_matrix_near(const std::vector<double>& got, const Matrix& want, const std::string& what) {
  double worst = 0, scale = 0;
  size_t k = 0;
  for (const auto& row : want)
    for (double v : row) {
      worst = std::max(worst, std::abs(got[k++] - v));
      scale = std::max(scale, std::abs(v));
    }
  ASSERT_EQ(k, got.size()) << what;
  EXPECT_LE(worst, 1e-13 * scale) << what << ": off by " << worst;
}

constexpr int kBatch = 5, kIn = 6, kH1 = 7, kH2 = 4, kClasses = 3;

// dense -> relu -> dense -> relu -> output, no biases (`after_relu` adds a layer, e.g. dropout 0,
// between each ReLU and the layer above it).
ModelSpec small_spec(Feedback feedback, const std::vector<LayerSpec>& after_relu = {}) {
  ModelSpec spec;
  spec.name = "small";
  spec.layers.push_back({"dense", kH1, false, 0.5, 0});
  spec.layers.push_back({"relu"});
  spec.layers.insert(spec.layers.end(), after_relu.begin(), after_relu.end());
  spec.layers.push_back({"dense", kH2, false, 0.5, 0});
  spec.layers.push_back({"relu"});
  spec.layers.insert(spec.layers.end(), after_relu.begin(), after_relu.end());
  spec.output = {"dense", 0, false, 0.5, 0};
  spec.feedback = feedback;
  return spec;
}

Tensor upload(Backend& be, const Shape& shape, const std::vector<double>& v) {
  Tensor t = be.empty(shape, DType::F64);
  be.copy_from_host(t, v.data());
  return t;
}

std::vector<double> random_values(size_t n, uint64_t seed, double lo, double hi) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> v(n);
  for (double& x : v) x = u(gen);
  return v;
}

// The update of one step, by hand: forward h1 = relu(x W1^T), h2 = relu(h1 W2^T); the output
// error e [B, classes] (EBP: dlogits; BrainProp: err_b at unit s_b, 0 elsewhere); then
//   W3' = W3 - s e^T h2,  W2' = W2 - s ((e D2) ⊙ [h2 > 0])^T h1,  W1' = W1 - s ((e D1) ⊙ [h1 > 0])^T x
// with s = lr / B, D2 = "dense2.dfa" [classes, H2] and D1 = "dense1.dfa" [classes, H1].
TEST(Dfa, UpdatesEqualTheExplicitFormulaForBothRules) {
  auto be = make_cpu_backend(2);
  const double lr = 0.7;
  const std::vector<double> xv = random_values(kBatch * kIn, 1, -1, 1);
  const Matrix x = as_matrix(xv, kBatch, kIn);
  for (Rule rule : {Rule::Ebp, Rule::BrainProp}) {
    Net net(small_spec(Feedback::Dfa), {kIn}, kClasses, *be, kBatch, DType::F64, 11);
    const auto before = snapshot(net);
    ASSERT_TRUE(before.count("dense1.dfa") && before.count("dense2.dfa"));
    EXPECT_EQ(before.size(), 5u);  // 3 weights, 2 D, no B
    const Matrix w1 = as_matrix(before.at("dense1.weight"), kH1, kIn);
    const Matrix w2 = as_matrix(before.at("dense2.weight"), kH2, kH1);
    const Matrix w3 = as_matrix(before.at("output.weight"), kClasses, kH2);
    const Matrix d1 = as_matrix(before.at("dense1.dfa"), kClasses, kH1);
    const Matrix d2 = as_matrix(before.at("dense2.dfa"), kClasses, kH2);
    const Matrix h1 = relu(times_transposed(x, w1)), h2 = relu(times_transposed(h1, w2));

    net.forward(upload(*be, {kBatch, kIn}, xv), true);
    Matrix e(kBatch, std::vector<double>(kClasses, 0.0));
    const UpdateArgs update{lr, kBatch};
    if (rule == Rule::Ebp) {
      const std::vector<double> ev = random_values(kBatch * kClasses, 2, -1, 1);
      e = as_matrix(ev, kBatch, kClasses);
      net.backward(upload(*be, {kBatch, kClasses}, ev), update);
    } else {
      const std::vector<int32_t> action = {2, 0, 1, 2, 1};
      const std::vector<double> err = {0.9, -0.4, 0.3, -1.1, 0.6};
      for (int b = 0; b < kBatch; ++b) e[size_t(b)][size_t(action[size_t(b)])] = err[size_t(b)];
      Tensor a = be->empty({kBatch}, DType::I32);
      be->copy_from_host(a, action.data());
      net.backward_selected(a, upload(*be, {kBatch}, err), update);
    }
    const double s = lr / kBatch;
    const auto after = snapshot(net);
    const std::string what = rule_name(rule);
    expect_matrix_near(after.at("output.weight"), sgd(w3, e, h2, s), what + " output");
    expect_matrix_near(after.at("dense2.weight"), sgd(w2, gated(times(e, d2), h2), h1, s), what + " dense2");
    expect_matrix_near(after.at("dense1.weight"), sgd(w1, gated(times(e, d1), h1), x, s), what + " dense1");
    EXPECT_EQ(after.at("dense1.dfa"), before.at("dense1.dfa")) << "D is fixed";
    EXPECT_EQ(after.at("dense2.dfa"), before.at("dense2.dfa")) << "D is fixed";
  }
}

// BrainProp: the feedback arriving at dense1 is err_b D1[s_b, :] gated by its ReLU. With the
// identity as input (sample b is unit b), dense1's update W1' = W1 - s delta^T x puts delta_b
// into column b, so the feedback is read back exactly. Both gathers: fused with the ReLU right
// under the injection point, and plain with a dropout (rate 0) between them.
TEST(Dfa, BrainPropFeedbackIsTheGatedRowOfDAtTheSelectedUnit) {
  auto be = make_cpu_backend(2);
  const double lr = 0.5, s = lr / kBatch;
  std::vector<double> identity(kBatch * kBatch, 0.0);
  for (int b = 0; b < kBatch; ++b) identity[size_t(b * kBatch + b)] = 1;
  const std::vector<int32_t> action = {1, 2, 0, 1, 2};
  const std::vector<double> err = {0.7, -0.2, 1.3, -0.9, 0.4};
  LayerSpec no_dropout{"dropout"};
  no_dropout.rate = 0;
  for (const auto& between : {std::vector<LayerSpec>{}, std::vector<LayerSpec>{no_dropout}}) {
    const std::string what = between.empty() ? "fused gate" : "gather, then the ReLU";
    Net net(small_spec(Feedback::Dfa, between), {kBatch}, kClasses, *be, kBatch, DType::F64, 5);
    const auto before = snapshot(net);
    const Matrix w1 = as_matrix(before.at("dense1.weight"), kH1, kBatch);
    const Matrix d1 = as_matrix(before.at("dense1.dfa"), kClasses, kH1);
    net.forward(upload(*be, {kBatch, kBatch}, identity), true);
    Tensor a = be->empty({kBatch}, DType::I32);
    be->copy_from_host(a, action.data());
    net.backward_selected(a, upload(*be, {kBatch}, err), UpdateArgs{lr, kBatch});
    const Matrix w1_after = as_matrix(snapshot(net).at("dense1.weight"), kH1, kBatch);
    int active = 0;
    for (int b = 0; b < kBatch; ++b)
      for (int u = 0; u < kH1; ++u) {
        const double arrived = (w1[size_t(u)][size_t(b)] - w1_after[size_t(u)][size_t(b)]) / s;
        const bool gate = w1[size_t(u)][size_t(b)] > 0;  // dense1's output for sample b is W1[:, b]
        const double want = gate ? err[size_t(b)] * d1[size_t(action[size_t(b)])][size_t(u)] : 0.0;
        EXPECT_NEAR(arrived, want, 1e-13) << what << ": sample " << b << " unit " << u;
        active += gate ? 1 : 0;
      }
    EXPECT_GT(active, 5) << "the test needs open and closed gates";
    EXPECT_LT(active, kBatch * kH1 - 5) << "the test needs open and closed gates";
  }
}

// Under the output D is [classes, output inputs]: with one hidden weighted layer, dfa is fa with
// the output's B set to D (and the hidden layer's own B unused, as nothing is below it).
TEST(Dfa, WithOneHiddenLayerIsFaWithTheOutputsBEqualToD) {
  auto be = make_cpu_backend(2);
  ModelSpec spec;
  spec.name = "one";
  spec.layers = {{"dense", kH1, true, 0.5, 1e-3}, {"relu"}};
  spec.output = {"dense", 0, true, 0.5, 1e-3};
  const std::vector<double> xv = random_values(kBatch * kIn, 3, -1, 1);
  for (Rule rule : {Rule::Ebp, Rule::BrainProp}) {
    spec.feedback = Feedback::Dfa;
    Net dfa(spec, {kIn}, kClasses, *be, kBatch, DType::F64, 4);
    spec.feedback = Feedback::Fa;
    Net fa(spec, {kIn}, kClasses, *be, kBatch, DType::F64, 4);
    const auto d = snapshot(dfa);
    for (const NamedParam& p : fa.state_tensors())
      if (p.name == "output.feedback") be->copy_from_host(*p.tensor, d.at("dense1.dfa").data());
    for (Net* net : {&dfa, &fa}) {
      net->forward(upload(*be, {kBatch, kIn}, xv), true);
      if (rule == Rule::Ebp) {
        net->backward(upload(*be, {kBatch, kClasses}, random_values(kBatch * kClasses, 4, -1, 1)),
                      UpdateArgs{0.3, kBatch});
      } else {
        const std::vector<int32_t> action = {0, 1, 2, 2, 0};
        Tensor a = be->empty({kBatch}, DType::I32);
        be->copy_from_host(a, action.data());
        net->backward_selected(a, upload(*be, {kBatch}, {0.5, -0.5, 0.8, -0.1, 0.2}), UpdateArgs{0.3, kBatch});
      }
    }
    const auto got = snapshot(dfa), want = snapshot(fa);
    for (const char* name : {"dense1.weight", "dense1.bias", "output.weight", "output.bias"})
      EXPECT_EQ(got.at(name), want.at(name)) << rule_name(rule) << " " << name;
  }
}

using test::synthetic_halves;

// conv -> relu -> batchnorm -> local2d -> relu -> flatten -> dense -> relu -> dropout: segments
// through batch norm, flatten and dropout. D is checkpointed; an interrupted and resumed run is
// the uninterrupted one; the checkpoint loads into a symmetric net (D skipped), and a dfa net
// refuses a checkpoint without D.
TEST(Dfa, InterruptedAndResumedRunMatchesTheUninterruptedOne) {
  const Dataset data = synthetic_halves(500, 100, 3);
  auto be = make_cpu_backend(2);
  for (Rule rule : {Rule::BrainProp, Rule::Ebp}) {
    TrainConfig c;
    c.model.name = "conv_dfa";
    LayerSpec conv;
    conv.type = "conv2d";
    conv.filters = 4;
    conv.init_std = 0.1;
    conv.l2 = 1e-3;
    LayerSpec local = conv;
    local.type = "local2d";
    local.filters = 3;
    local.stride_h = local.stride_w = 2;
    LayerSpec dropout{"dropout"};
    dropout.rate = 0.2;
    c.model.layers = {conv,     {"relu"}, {"batchnorm"}, local, {"relu"}, {"flatten"},
                      {"dense", 16, true, 0.1, 1e-3}, {"relu"}, dropout};
    c.model.output = {"dense", 0, false, 0.1, 0};
    c.model.feedback = Feedback::Dfa;
    c.rule = rule;
    c.max_epochs = 3;
    c.batch_size = 64;  // 8 batches an epoch, the last one partial
    c.val = "test";
    c.progress = false;
    const test::TempDir tmp("brainprop-test-dfa-resume");
    c.out_dir = (tmp.path() / "whole").string();
    const TrainResult whole = train(c, data, *be, nullptr);

    TrainConfig cut = c;
    cut.out_dir = (tmp.path() / "cut").string();
    cut.halt_after_steps = 11;  // inside epoch 2
    const TrainResult first = train(cut, data, *be, nullptr);
    EXPECT_EQ(first.summary.stop_reason, "interrupted");
    cut.halt_after_steps = -1;
    const TrainResult resumed = train(cut, data, *be, nullptr, RunStart::Resume);
    test::expect_same_history(whole, resumed);
    const SafetensorsFile a = test::expect_same_last_checkpoint(c.out_dir, cut.out_dir);
    std::map<std::string, std::vector<uint8_t>> state;
    int dfa_tensors = 0;
    for (size_t i = 0; i < a.tensors.size(); ++i) {
      dfa_tensors += a.tensors[i].name.find(".dfa") != std::string::npos ? 1 : 0;
      EXPECT_EQ(a.tensors[i].name.find(".feedback"), std::string::npos) << "dfa has no B";
      state[a.tensors[i].name] = a.tensors[i].bytes;
    }
    EXPECT_EQ(dfa_tensors, 3);  // conv2d1, local2d1, dense1

    ModelSpec symmetric_spec = c.model;
    symmetric_spec.feedback = Feedback::Symmetric;
    Net symmetric(symmetric_spec, {8, 8, 1}, 2, *be, 4, DType::F32, 1);
    symmetric.load_state(state, "last.safetensors");  // for evaluation: D is skipped
    Net dfa(c.model, {8, 8, 1}, 2, *be, 4, DType::F32, 1);
    test::expect_error([&] { dfa.load_state(symmetric.state(), "ckpt"); }, "missing parameter conv2d1.dfa");
  }
}

TEST(Dfa, RefusesALayerWithParametersBelowEveryWeightedLayer) {
  auto be = make_cpu_backend(2);
  ModelSpec spec;
  spec.name = "bn_first";
  spec.layers = {{"batchnorm"}, {"dense", 4, false, 0.1, 0}, {"relu"}};
  spec.output = {"dense", 0, false, 0.1, 0};
  spec.feedback = Feedback::Dfa;
  test::expect_error([&] { Net net(spec, {6}, 3, *be, 2, DType::F64, 1); },
                     "--feedback dfa: layer batchnorm1 has parameters but no weighted layer below it");
}

TEST(Dfa, ModelJsonKeyRoundTrips) {
  const ModelSpec spec =
      parse_model({{"name", "m"}, {"layers", nlohmann::json::array()}, {"feedback", "DFA"}}, "m.json");
  EXPECT_EQ(spec.feedback, Feedback::Dfa);
  EXPECT_EQ(model_to_json(spec)["feedback"], "dfa");
  EXPECT_EQ(parse_model(model_to_json(spec), "again").feedback, Feedback::Dfa);
  test::expect_error(
      [&] {
        parse_model({{"name", "m"}, {"layers", nlohmann::json::array()}, {"feedback", "dfa"}, {"feedback_decay", 0.1}},
                    "m.json");
      },
      "only \"feedback\": \"learned\" has a feedback decay");
}

}  // namespace
}  // namespace bp
