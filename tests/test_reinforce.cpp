// REINFORCE, the reward-only policy-gradient baseline: the head's per-call contract (sampled
// action, reward, gradient with the baseline, baseline update), its gradient averaged over many
// sampled actions against the exact policy gradient, the action frequencies against the
// softmax, resume exactness with the baseline, and a short learning run.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "core/backend.h"
#include "io/safetensors.h"
#include "math/heads.h"
#include "resume_checks.h"
#include "synthetic_data.h"
#include "test_helpers.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

namespace bp {
namespace {

namespace fs = std::filesystem;

std::vector<double> softmax(const float* a, int classes) {
  double top = a[0], total = 0;
  for (int c = 1; c < classes; ++c) top = std::max(top, double(a[c]));
  std::vector<double> p(static_cast<size_t>(classes));
  for (int c = 0; c < classes; ++c) total += p[size_t(c)] = std::exp(double(a[c]) - top);
  for (double& v : p) v /= total;
  return p;
}

// The exact policy gradient of one row: E_s[-(r(s) - b)(onehot(s) - pi)].
std::vector<double> exact_policy_gradient(const float* a, int classes, int label, double b) {
  const std::vector<double> pi = softmax(a, classes);
  std::vector<double> g(size_t(classes), 0.0);
  for (int s = 0; s < classes; ++s) {
    const double advantage = (s == label ? 1.0 : 0.0) - b;
    for (int c = 0; c < classes; ++c)
      g[size_t(c)] -= pi[size_t(s)] * advantage * ((c == s ? 1.0 : 0.0) - pi[size_t(c)]);
  }
  return g;
}

struct HeadFixture {
  std::unique_ptr<Backend> be = make_cpu_backend(1);
  int batch, classes;
  std::vector<float> a;
  std::vector<int32_t> y;
  Tensor logits, labels, grad, baseline, stats;
  HeadFixture(int batch_, int classes_, uint32_t seed) : batch(batch_), classes(classes_) {
    std::mt19937 gen(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    a.resize(size_t(batch * classes));
    y.resize(size_t(batch));
    for (float& v : a) v = normal(gen);
    for (int32_t& v : y) v = int32_t(gen() % uint32_t(classes));
    logits = be->empty({batch, classes}, DType::F32);
    labels = be->empty({batch}, DType::I32);
    grad = be->empty({batch, classes}, DType::F32);
    baseline = be->empty({1}, DType::F64);
    stats = be->empty({kStatCount}, DType::F64);
    be->copy_from_host(logits, a.data());
    be->copy_from_host(labels, y.data());
    be->fill(stats, 0.0);
    be->fill(baseline, 0.0);
  }
  const float* row(int b) const { return &a[size_t(b * classes)]; }
};

TEST(Reinforce, HeadWritesTheSampledPolicyGradientAndMovesTheBaseline) {
  HeadFixture f(40, 5, 3);
  const double b0 = 0.3, rate = 0.25;
  f.be->fill(f.baseline, b0);
  f.be->reinforce_head(f.logits, f.labels, {11, 7, rate}, f.baseline, f.grad, f.stats);
  double reward_sum = 0, loss = 0, correct = 0, explored = 0;
  for (int b = 0; b < f.batch; ++b) {
    const int s = reinforce_select(f.row(b), f.classes, 11, 7, uint32_t(b));
    const int greedy = argmax_row(f.row(b), f.classes);
    const double r = s == f.y[size_t(b)] ? 1.0 : 0.0;
    const std::vector<double> pi = softmax(f.row(b), f.classes);
    for (int c = 0; c < f.classes; ++c)
      EXPECT_NEAR(f.grad.data<float>()[b * f.classes + c],
                  -(r - b0) * ((c == s ? 1.0 : 0.0) - pi[size_t(c)]), 1e-6)
          << "row " << b << " class " << c;
    reward_sum += r;
    loss += -(r - b0) * std::log(pi[size_t(s)]);
    correct += greedy == f.y[size_t(b)];
    explored += s != greedy;
  }
  const double* st = f.stats.data<double>();
  EXPECT_NEAR(st[kStatLoss], loss, 1e-4);
  EXPECT_EQ(st[kStatReward], reward_sum);
  EXPECT_EQ(st[kStatCorrect], correct);
  EXPECT_EQ(st[kStatExplored], explored);
  EXPECT_EQ(st[kStatSamples], double(f.batch));
  EXPECT_DOUBLE_EQ(f.baseline.data<double>()[0], b0 + rate * (reward_sum / f.batch - b0));
}

// (a) Averaged over many steps' sampled actions, each element of the head's gradient matches
// the exact policy gradient within 5 standard errors of its own sample spread (a per-element
// chance of a false alarm below 1e-6; 40 elements).
TEST(Reinforce, AverageGradientIsTheExactPolicyGradient) {
  HeadFixture f(8, 5, 5);
  const double b0 = 0.35;
  const int steps = 20000;
  const size_t n = size_t(f.batch * f.classes);
  std::vector<double> sum(n, 0.0), sum_sq(n, 0.0);
  for (int t = 0; t < steps; ++t) {
    f.be->fill(f.baseline, b0);
    f.be->reinforce_head(f.logits, f.labels, {21, uint64_t(t), 0.0}, f.baseline, f.grad, f.stats);
    for (size_t i = 0; i < n; ++i) {
      const double g = f.grad.data<float>()[i];
      sum[i] += g;
      sum_sq[i] += g * g;
    }
  }
  for (int b = 0; b < f.batch; ++b) {
    const std::vector<double> exact = exact_policy_gradient(f.row(b), f.classes, f.y[size_t(b)], b0);
    for (int c = 0; c < f.classes; ++c) {
      const size_t i = size_t(b * f.classes + c);
      const double mean = sum[i] / steps;
      const double var = std::max(sum_sq[i] / steps - mean * mean, 0.0);
      const double stderr_ = std::sqrt(var / steps);
      EXPECT_NEAR(mean, exact[size_t(c)], 5 * stderr_ + 1e-6) << "row " << b << " class " << c;
    }
  }
}

// (b) The sampled actions follow softmax(a): per-class frequencies within 5 binomial standard
// deviations and a chi-square over all classes below its 1e-4 tail (13.3 for 4 dof is the 1%
// point, 23.5 the 1e-4 point).
TEST(Reinforce, SampledActionsFollowTheSoftmax) {
  const std::vector<float> a = {1.5f, 0.2f, -0.7f, 0.9f, 0.0f};
  const int trials = 200000;
  std::vector<double> counts(5, 0);
  for (int t = 0; t < trials; ++t)
    counts[size_t(reinforce_select(a.data(), 5, 9, uint64_t(t / 64), uint32_t(t % 64)))] += 1;
  const std::vector<double> p = softmax(a.data(), 5);
  double chi2 = 0;
  for (size_t c = 0; c < 5; ++c) {
    const double expected = trials * p[c];
    EXPECT_NEAR(counts[c] / trials, p[c], 5 * std::sqrt(p[c] * (1 - p[c]) / trials)) << "class " << c;
    chi2 += (counts[c] - expected) * (counts[c] - expected) / expected;
  }
  EXPECT_LT(chi2, 23.5);
}

// The head's own statistics agree: the reward rate is pi(label), the exploration rate
// 1 - pi(argmax), each within 5 binomial standard deviations.
TEST(Reinforce, HeadRewardAndExplorationRatesMatchThePolicy) {
  HeadFixture f(1, 4, 8);
  const int steps = 50000;
  for (int t = 0; t < steps; ++t)
    f.be->reinforce_head(f.logits, f.labels, {4, uint64_t(t), 0.0}, f.baseline, f.grad, f.stats);
  const std::vector<double> pi = softmax(f.row(0), f.classes);
  const double p_reward = pi[size_t(f.y[0])];
  const double p_explore = 1 - pi[size_t(argmax_row(f.row(0), f.classes))];
  const double* st = f.stats.data<double>();
  EXPECT_NEAR(st[kStatReward] / steps, p_reward, 5 * std::sqrt(p_reward * (1 - p_reward) / steps));
  EXPECT_NEAR(st[kStatExplored] / steps, p_explore, 5 * std::sqrt(p_explore * (1 - p_explore) / steps));
}

ModelSpec small_mlp() {
  ModelSpec spec;
  spec.name = "small_mlp";
  spec.layers = {{"flatten"}, {"dense", 64, false, 0.05, 0}, {"relu"}};
  spec.output = {"dense", 0, false, 0.05, 0};
  return spec;
}

using test::synthetic_quadrants;

TrainConfig reinforce_config(int epochs) {
  TrainConfig c;
  c.model = small_mlp();
  c.rule = Rule::Reinforce;
  c.max_epochs = epochs;
  c.batch_size = 32;
  c.lr = 0.5;
  c.val = "test";
  c.progress = false;
  c.eval_batch = 200;
  return c;
}

double checkpoint_baseline(const std::string& run_dir) {
  const CheckpointInfo info = read_checkpoint_info((fs::path(run_dir) / "last.safetensors").string());
  return nlohmann::json::parse(info.metadata.at("trainer_state")).at("reinforce_baseline").get<double>();
}

// (c) A run halted inside an epoch and resumed has the uninterrupted run's history, weights and
// baseline bit for bit: the baseline is part of the checkpointed trainer state.
TEST(Reinforce, InterruptedAndResumedRunMatchesTheUninterruptedOne) {
  const Dataset data = synthetic_quadrants(600, 200, 4);
  auto be = make_cpu_backend(2);
  TrainConfig c = reinforce_config(3);
  const test::TempDir tmp("brainprop-test-reinforce-resume");
  c.out_dir = (tmp.path() / "whole").string();
  const TrainResult whole = train(c, data, *be, nullptr);

  TrainConfig cut = c;
  cut.out_dir = (tmp.path() / "cut").string();
  cut.halt_after_steps = 25;  // 17 batches an epoch (the last partial): inside epoch 2
  EXPECT_EQ(train(cut, data, *be, nullptr).summary.stop_reason, "interrupted");
  const double halted_baseline = checkpoint_baseline(cut.out_dir);
  EXPECT_NE(halted_baseline, 0.25) << "the baseline never moved from 1 / classes";
  cut.halt_after_steps = -1;
  const TrainResult resumed = train(cut, data, *be, nullptr, RunStart::Resume);

  test::expect_same_history(whole, resumed);
  EXPECT_EQ(resumed.summary.test_accuracy, whole.summary.test_accuracy);
  EXPECT_EQ(checkpoint_baseline(cut.out_dir), checkpoint_baseline(c.out_dir));
  test::expect_same_last_checkpoint(c.out_dir, cut.out_dir);
}

// (d) Reward alone teaches a 4-class problem (chance 0.25) within a few epochs, and the
// reward rate climbs with it.
TEST(Reinforce, LearnsASyntheticFourClassProblem) {
  const Dataset data = synthetic_quadrants(2000, 500, 6);
  auto be = make_cpu_backend(2);
  const TrainResult r = train(reinforce_config(4), data, *be, nullptr);
  ASSERT_EQ(r.history.size(), 4u);
  EXPECT_GT(r.history.back().val_accuracy, 0.9);
  EXPECT_GT(r.history.back().reward_rate, r.history.front().reward_rate);
  EXPECT_GT(r.history.back().reward_rate, 0.6);
}

}  // namespace
}  // namespace bp
