// Max-Boltzmann action selection: the greedy unit is chosen with probability
// (1 - eps) + eps * softmax(a)[best]; with eps = 1 the choices follow softmax(a); the
// same (seed, step, sample) always gives the same choice. Also Philox known answers.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/backend.h"
#include "math/heads.h"
#include "math/philox.h"

namespace bp {
namespace {

std::vector<double> softmax(const std::vector<float>& a) {
  double total = 0;
  std::vector<double> p(a.size());
  for (size_t i = 0; i < a.size(); ++i) total += p[i] = std::exp(double(a[i]));
  for (double& v : p) v /= total;
  return p;
}

// |observed - expected| within 5 standard deviations of a binomial proportion.
void expect_frequency(double count, double trials, double p, const char* what) {
  const double sigma = std::sqrt(p * (1 - p) / trials);
  EXPECT_NEAR(count / trials, p, 5 * sigma + 1e-12) << what;
}

TEST(Philox, MatchesRandom123KnownAnswers) {
  // Known-answer vectors of Philox4x32-10 from the Random123 distribution.
  Philox4 zero = philox4x32(0, 0, 0, 0, 0);
  EXPECT_EQ(zero.v[0], 0x6627e8d5u);
  EXPECT_EQ(zero.v[1], 0xe169c58du);
  EXPECT_EQ(zero.v[2], 0xbc57ac4cu);
  EXPECT_EQ(zero.v[3], 0x9b00dbd8u);
  Philox4 ones = philox4x32(0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, ~uint64_t(0));
  EXPECT_EQ(ones.v[0], 0x408f276du);
  EXPECT_EQ(ones.v[1], 0x41c83b0eu);
  EXPECT_EQ(ones.v[2], 0xa20bc7c6u);
  EXPECT_EQ(ones.v[3], 0x6d5451fdu);
  Philox4 pi = philox4x32(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u,
                          (uint64_t(0x299f31d0u) << 32) | 0xa4093822u);
  EXPECT_EQ(pi.v[0], 0xd16cfe09u);
  EXPECT_EQ(pi.v[1], 0x94fdccebu);
  EXPECT_EQ(pi.v[2], 0x5001e420u);
  EXPECT_EQ(pi.v[3], 0x24126ea1u);
}

TEST(Philox, UniformsAreUniform) {
  const int n = 100000;
  int below_quarter = 0;
  double sum = 0;
  for (int i = 0; i < n; ++i) {
    const float u = uniform_from_bits(philox_draw(9, RngStream::kAction, uint32_t(i), 0).v[0]);
    ASSERT_GE(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    sum += u;
    below_quarter += u < 0.25f;
  }
  EXPECT_NEAR(sum / n, 0.5, 5 * std::sqrt(1.0 / 12 / n));
  expect_frequency(below_quarter, n, 0.25, "P(u < 0.25)");
}

TEST(ActionSelection, GreedyFrequencyIsOneMinusEpsPlusEpsTimesSoftmaxOfBest) {
  const std::vector<float> a = {0.3f, 1.2f, -0.5f, 0.9f, 0.0f};
  const float eps = 0.2f;
  const int trials = 200000;
  int greedy = 0, explored = 0;
  for (int t = 0; t < trials; ++t) {
    const ActionChoice c = max_boltzmann_select(a.data(), 5, eps, 42, uint64_t(t / 128), uint32_t(t % 128));
    greedy += c.action == 1;
    explored += c.explored;
    EXPECT_EQ(c.explored, c.action != 1);
  }
  const double p_best = softmax(a)[1];
  expect_frequency(greedy, trials, (1 - eps) + eps * p_best, "greedy frequency");
  expect_frequency(explored, trials, eps * (1 - p_best), "exploration frequency");
}

TEST(ActionSelection, WithEpsilonOneChoicesFollowTheSoftmax) {
  const std::vector<float> a = {2.0f, 0.5f, -1.0f, 1.0f};
  const int trials = 200000;
  std::vector<double> counts(4, 0);
  for (int t = 0; t < trials; ++t)
    counts[size_t(max_boltzmann_select(a.data(), 4, 1.0f, 7, uint64_t(t), 3).action)] += 1;
  const std::vector<double> p = softmax(a);
  for (size_t c = 0; c < 4; ++c) expect_frequency(counts[c], trials, p[c], "class frequency");
}

TEST(ActionSelection, EpsilonZeroIsArgmaxWithFirstMaximumWinning) {
  const std::vector<float> a = {0.1f, 0.7f, 0.7f, -2.0f};
  for (int t = 0; t < 1000; ++t) EXPECT_EQ(max_boltzmann_select(a.data(), 4, 0.0f, 1, 0, uint32_t(t)).action, 1);
}

TEST(ActionSelection, SameSeedSameChoicesOtherSeedOtherChoices) {
  const std::vector<float> a = {0.2f, 0.1f, 0.0f, 0.3f, 0.25f, 0.05f};
  int differ = 0;
  for (uint32_t s = 0; s < 5000; ++s) {
    const int first = max_boltzmann_select(a.data(), 6, 0.5f, 100, 17, s).action;
    EXPECT_EQ(first, max_boltzmann_select(a.data(), 6, 0.5f, 100, 17, s).action);
    differ += first != max_boltzmann_select(a.data(), 6, 0.5f, 101, 17, s).action;
  }
  EXPECT_GT(differ, 500);
}

TEST(ActionSelection, BackendHeadUsesTheSharedControllerPerSample) {
  auto be = make_cpu_backend(2);
  const int batch = 64, classes = 3;
  Tensor logits = be->empty({batch, classes}, DType::F32);
  Tensor labels = be->empty({batch}, DType::I32);
  std::vector<float> a(batch * classes);
  std::vector<int32_t> y(batch);
  for (int i = 0; i < batch * classes; ++i) a[size_t(i)] = float((i * 37) % 11) * 0.1f;
  for (int b = 0; b < batch; ++b) y[size_t(b)] = b % classes;
  be->copy_from_host(logits, a.data());
  be->copy_from_host(labels, y.data());
  Tensor action = be->empty({batch}, DType::I32), err = be->empty({batch}, DType::F32);
  Tensor stats = be->empty({kStatCount}, DType::F64);
  be->fill(stats, 0.0);
  be->brainprop_head(logits, labels, {0.5f, 99, 1234}, action, err, stats);
  double reward = 0;
  for (int b = 0; b < batch; ++b) {
    const ActionChoice c = max_boltzmann_select(&a[size_t(b * classes)], classes, 0.5f, 99, 1234, uint32_t(b));
    EXPECT_EQ(action.data<int32_t>()[b], c.action);
    reward += c.action == y[size_t(b)];
  }
  EXPECT_EQ(stats.data<double>()[kStatReward], reward);
}

}  // namespace
}  // namespace bp
