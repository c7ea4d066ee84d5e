// Output heads on the GPU against the CPU: BrainProp's Max-Boltzmann action selection must pick
// exactly the same actions for the same (seed, step) (the Philox draws are shared), with the
// same output errors and statistics; REINFORCE's sampled actions, policy gradient, statistics
// and baseline update; softmax cross-entropy gradients and loss; argmax counts (ties included).
#include <sstream>
#include <string>

#include "gpu_parity.h"
#include "math/heads.h"

namespace bp::test {
namespace {

class GpuHeads : public GpuParity {
 protected:
  // Logits in [lo, hi) and labels in [0, classes); every third label is the row's argmax so
  // the correct-counts are far from zero.
  void make_batch(int64_t batch, int classes, uint32_t seed, float lo, float hi) {
    batch_ = batch;
    classes_ = classes;
    logits_ = random_floats(batch * classes, seed, lo, hi);
    labels_ = random_ints(batch, seed + 1, 0, classes);
    for (int64_t b = 0; b < batch; b += 3)
      labels_[size_t(b)] = argmax_row(logits_.data() + b * classes, classes);
  }

  // Stats start from non-zero values on both: the heads accumulate (+=) into them.
  std::pair<Tensor, Tensor> start_stats() {
    const std::vector<double> start = {0.5, 1, 2, 3, 4, 0, 0, 0};
    return both({kStatCount}, start);
  }

  // What a mismatching sample looked like, for the failure message.
  std::string describe_row(int64_t b) const {
    std::ostringstream out;
    out << "sample " << b << " label " << labels_[size_t(b)] << " logits";
    for (int c = 0; c < classes_ && c < 12; ++c) out << " " << logits_[size_t(b * classes_ + c)];
    if (classes_ > 12) out << " ...";
    return out.str();
  }

  // One brainprop_head call on both; returns the GPU actions.
  std::vector<int32_t> check_brainprop(float epsilon, uint64_t seed, uint64_t step) {
    const std::string what = "brainprop_head " + std::to_string(batch_) + "x" +
                             std::to_string(classes_) + " epsilon " + std::to_string(epsilon) +
                             " step " + std::to_string(step);
    auto [cl, gl] = both({batch_, classes_}, logits_);
    auto [cy, gy] = both({batch_}, labels_);
    auto [ca, ga] = outputs({batch_}, DType::I32);
    auto [ce, ge] = outputs({batch_});
    auto [cs, gs] = start_stats();
    const BrainPropHeadArgs args{epsilon, seed, step};
    cpu_->brainprop_head(cl, cy, args, ca, ce, cs);
    gpu_->brainprop_head(gl, gy, args, ga, ge, gs);

    // Actions: exactly the CPU's. (The GPU's expf and the CPU's exp, which on the host is the
    // double one rounded to float, can differ in the last ulp; an exploratory draw would have to
    // fall within ~1e-7 of a cumulative-probability boundary to flip, so with these fixed
    // inputs it does not. Should it ever, the failure prints the sample.)
    const std::vector<int32_t> a = host<int32_t>(*cpu_, ca), g = host<int32_t>(*gpu_, ga);
    int64_t mismatches = 0;
    std::string first;
    for (size_t b = 0; b < a.size(); ++b)
      if (a[b] != g[b] && ++mismatches <= 5)
        first += "\n  cpu " + std::to_string(a[b]) + " gpu " + std::to_string(g[b]) + " at " +
                 describe_row(int64_t(b));
    EXPECT_EQ(mismatches, 0) << what << ": actions differ" << first;
    // err = -(r - a[s]): the same float subtraction once the actions agree.
    expect_close(ce, ge, 1e-6, 1e-6, what + " err");

    const std::vector<double> sc = host<double>(*cpu_, cs), sg = host<double>(*gpu_, gs);
    // Loss: a float64 sum of per-sample losses in a different order (serial vs a tree):
    // 1e-5 relative is far above that rounding.
    EXPECT_NEAR(sg[kStatLoss], sc[kStatLoss], 1e-5 * std::abs(sc[kStatLoss])) << what;
    // Counts of whole samples: exact.
    EXPECT_EQ(sg[kStatCorrect], sc[kStatCorrect]) << what;
    EXPECT_EQ(sg[kStatReward], sc[kStatReward]) << what;
    EXPECT_EQ(sg[kStatExplored], sc[kStatExplored]) << what;
    EXPECT_EQ(sg[kStatSamples], sc[kStatSamples]) << what;
    EXPECT_EQ(sg[kStatSamples], 4.0 + double(batch_)) << what;
    for (int k = kStatSamples + 1; k < kStatCount; ++k) EXPECT_EQ(sg[size_t(k)], 0.0) << k;
    // The greedy/exploratory split is what epsilon asks for: all explore at epsilon 1 (bar
    // samples whose draw hits the greedy unit), few at 0.02.
    const double explored = sg[kStatExplored] - 3.0;
    if (epsilon >= 1.f) {
      EXPECT_GT(explored, 0.3 * double(batch_)) << what;
    }
    if (epsilon <= 0.05f) {
      EXPECT_LT(explored, 0.15 * double(batch_)) << what;
    }
    return g;
  }

  int64_t batch_ = 0;
  int classes_ = 0;
  std::vector<float> logits_;
  std::vector<int32_t> labels_;
};

using Case = std::pair<int64_t, int>;  // batch, classes

// The step's upper 32 bits are part of the Philox counter: use a step beyond 2^32.
constexpr uint64_t kSeed = 20240611;
constexpr uint64_t kStep = (uint64_t(1) << 32) + 12345;

TEST_F(GpuHeads, BrainPropSameActions200x10) {
  make_batch(200, 10, 1, -3.f, 3.f);
  check_brainprop(0.02f, kSeed, kStep);
  const std::vector<int32_t> s0 = check_brainprop(1.0f, kSeed, kStep);
  // The step keys the draws: the next step explores differently.
  const std::vector<int32_t> s1 = check_brainprop(1.0f, kSeed, kStep + 1);
  EXPECT_NE(s0, s1) << "the exploratory actions must depend on the step";
}

TEST_F(GpuHeads, BrainPropSameActions64x200) {
  // Small logit spread: with 200 classes the exploratory draws spread over many units.
  make_batch(64, 200, 2, -1.f, 1.f);
  check_brainprop(0.02f, kSeed, kStep);
  check_brainprop(1.0f, kSeed, kStep);
  check_brainprop(1.0f, kSeed + 1, 7);
}

TEST_F(GpuHeads, SoftmaxCrossEntropy) {
  // 10 classes with logits in [-2, 2) keep the largest probability below ~0.87, so the
  // label's gradient p - 1 is never a tiny difference; 200 classes in [-2, 2) too.
  for (auto [batch, classes] : {Case{200, 10}, Case{64, 200}}) {
    make_batch(batch, classes, uint32_t(batch + classes), -2.f, 2.f);
    const std::string what = "softmax_xent_head " + std::to_string(batch) + "x" +
                             std::to_string(classes);
    auto [cl, gl] = both({batch, classes}, logits_);
    auto [cy, gy] = both({batch}, labels_);
    auto [cg, gg] = outputs({batch, classes});
    auto [cs, gs] = start_stats();
    cpu_->softmax_xent_head(cl, cy, cg, cs);
    gpu_->softmax_xent_head(gl, gy, gg, gs);
    // Each probability is one exp of a float difference: GPU expf/logf are within 2 ulps of
    // the CPU's correctly rounded values, ~1e-6 relative after the log-sum; 1e-5 relative with
    // a 1e-3 floor (no probability here is below ~1e-4, and those are still relative-accurate).
    expect_close(cg, gg, 1e-5, 1e-3, what + " grad");
    const std::vector<double> sc = host<double>(*cpu_, cs), sg = host<double>(*gpu_, gs);
    EXPECT_NEAR(sg[kStatLoss], sc[kStatLoss], 1e-5 * std::abs(sc[kStatLoss])) << what;
    EXPECT_EQ(sg[kStatCorrect], sc[kStatCorrect]) << what;
    EXPECT_EQ(sg[kStatReward], sc[kStatReward]) << what << " (EBP adds no reward)";
    EXPECT_EQ(sg[kStatExplored], sc[kStatExplored]) << what;
    EXPECT_EQ(sg[kStatSamples], sc[kStatSamples]) << what;
    EXPECT_GE(sc[kStatCorrect] - 1.0, double((batch + 2) / 3)) << what;  // argmax labels
  }
}

TEST_F(GpuHeads, ReinforceSameActionsGradientAndBaseline) {
  // Logits in [-3, 3): the sampled actions spread over the classes; grad and baseline outputs
  // poisoned (the baseline is read first, so it starts at the same value on both).
  for (auto [batch, classes] : {Case{200, 10}, Case{64, 200}, Case{300, 3}}) {
    make_batch(batch, classes, uint32_t(7 * batch + classes), -3.f, 3.f);
    for (uint64_t step : {kStep, uint64_t(5)}) {
      const std::string what = "reinforce_head " + std::to_string(batch) + "x" +
                               std::to_string(classes) + " step " + std::to_string(step);
      auto [cl, gl] = both({batch, classes}, logits_);
      auto [cy, gy] = both({batch}, labels_);
      auto [cg, gg] = outputs({batch, classes});
      auto [cb, gb] = both({1}, std::vector<double>{0.3});
      auto [cs, gs] = start_stats();
      const ReinforceHeadArgs args{kSeed, step, 0.05};
      cpu_->reinforce_head(cl, cy, args, cb, cg, cs);
      gpu_->reinforce_head(gl, gy, args, gb, gg, gs);
      // The actions are not an output: the reward and exploration counts and the gradient
      // (whose sign pattern names the action) show them. A different action would move a
      // gradient element by ~|r - b| ~ 0.3, far beyond the tolerance; the values themselves
      // are an exp of a float difference each, as for cross-entropy: 1e-5 relative, 1e-3 floor.
      expect_close(cg, gg, 1e-5, 1e-3, what + " grad");
      const std::vector<double> sc = host<double>(*cpu_, cs), sg = host<double>(*gpu_, gs);
      EXPECT_NEAR(sg[kStatLoss], sc[kStatLoss], 1e-5 * std::abs(sc[kStatLoss]) + 1e-9) << what;
      EXPECT_EQ(sg[kStatCorrect], sc[kStatCorrect]) << what;
      EXPECT_EQ(sg[kStatReward], sc[kStatReward]) << what;
      EXPECT_EQ(sg[kStatExplored], sc[kStatExplored]) << what;
      EXPECT_EQ(sg[kStatSamples], 4.0 + double(batch)) << what;
      for (int k = kStatSamples + 1; k < kStatCount; ++k) EXPECT_EQ(sg[size_t(k)], 0.0) << k;
      EXPECT_GT(sg[kStatExplored] - 3.0, 0.1 * double(batch)) << what << ": every trial samples";
      // b + 0.05 (mean r - b) from the same whole-sample reward count: the same double.
      EXPECT_EQ(host<double>(*gpu_, gb)[0], host<double>(*cpu_, cb)[0]) << what;
      EXPECT_NE(host<double>(*gpu_, gb)[0], 0.3) << what << ": the baseline did not move";
    }
  }
}

TEST_F(GpuHeads, CountCorrectFirstMaximumWinsTies) {
  // Logits quantised to 3 levels: most rows have tied maxima, where the first one counts.
  for (auto [batch, classes] : {Case{300, 10}, Case{64, 200}, Case{1000, 3}}) {
    const std::string what = "count_correct " + std::to_string(batch) + "x" +
                             std::to_string(classes);
    make_batch(batch, classes, uint32_t(3 * batch + classes), 0.f, 3.f);
    for (float& v : logits_) v = std::floor(v);
    labels_ = random_ints(batch, uint32_t(batch), 0, classes);
    for (int64_t b = 0; b < batch; b += 3)
      labels_[size_t(b)] = argmax_row(logits_.data() + b * classes, classes);
    auto [cl, gl] = both({batch, classes}, logits_);
    auto [cy, gy] = both({batch}, labels_);
    auto [cs, gs] = start_stats();
    cpu_->count_correct(cl, cy, cs);
    gpu_->count_correct(gl, gy, gs);
    expect_equal_values(host<double>(*cpu_, cs), host<double>(*gpu_, gs), what);
  }
}

}  // namespace
}  // namespace bp::test
