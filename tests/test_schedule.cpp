// The learning-rate schedule (0-based epochs, halving every 100), Keras-style early stopping,
// and the seeded per-epoch shuffle.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "core/backend.h"
#include "train/schedule.h"
#include "train/shuffle.h"

namespace {

TEST(LrSchedule, HalvesEveryHundredZeroBasedEpochs) {
  const bp::LrSchedule s{0.1, 100, 0.5};
  EXPECT_DOUBLE_EQ(s.at(0), 0.1);
  EXPECT_DOUBLE_EQ(s.at(1), 0.1);
  EXPECT_DOUBLE_EQ(s.at(99), 0.1);
  EXPECT_DOUBLE_EQ(s.at(100), 0.05);
  EXPECT_DOUBLE_EQ(s.at(199), 0.05);
  EXPECT_DOUBLE_EQ(s.at(200), 0.025);
  EXPECT_DOUBLE_EQ(s.at(250), 0.025);
  EXPECT_DOUBLE_EQ(s.at(300), 0.0125);
}

TEST(LrSchedule, DefaultsAreTheReference) {
  const bp::LrSchedule s;
  EXPECT_DOUBLE_EQ(s.base, 0.1);
  EXPECT_EQ(s.every, 100);
  EXPECT_DOUBLE_EQ(s.factor, 0.5);
  EXPECT_DOUBLE_EQ(s.at(99), 0.1);
  EXPECT_DOUBLE_EQ(s.at(100), 0.05);
}

TEST(LrSchedule, EveryZeroIsConstant) {
  const bp::LrSchedule s{0.3, 0, 0.5};
  for (int epoch : {0, 1, 99, 100, 1000, 100000}) EXPECT_DOUBLE_EQ(s.at(epoch), 0.3) << epoch;
}

TEST(LrSchedule, CustomFactorAndPeriod) {
  const bp::LrSchedule s{1.0, 10, 0.1};
  EXPECT_DOUBLE_EQ(s.at(9), 1.0);
  EXPECT_DOUBLE_EQ(s.at(10), 0.1);
  EXPECT_NEAR(s.at(25), 0.01, 1e-15);
}

TEST(EarlyStopping, FirstValueIsAnImprovement) {
  bp::EarlyStopping es(3, 0.0);
  EXPECT_FALSE(es.update(0.1));
  EXPECT_DOUBLE_EQ(es.best(), 0.1);
  EXPECT_EQ(es.wait(), 0);
}

TEST(EarlyStopping, StopsAfterExactlyPatienceEpochsWithinMinDelta) {
  bp::EarlyStopping es(3, 0.001);
  EXPECT_FALSE(es.update(0.5));
  EXPECT_FALSE(es.update(0.6));     // improvement: best 0.6
  EXPECT_DOUBLE_EQ(es.best(), 0.6);
  EXPECT_FALSE(es.update(0.6005));  // 0.6005 - 0.001 <= 0.6: no improvement, wait 1
  EXPECT_EQ(es.wait(), 1);
  EXPECT_FALSE(es.update(0.6009));  // wait 2; best is still 0.6 (not bumped)
  EXPECT_EQ(es.wait(), 2);
  EXPECT_DOUBLE_EQ(es.best(), 0.6);
  EXPECT_TRUE(es.update(0.6));      // wait 3 == patience: stop on the 5th update
  EXPECT_EQ(es.wait(), 3);
}

TEST(EarlyStopping, ImprovementNeedsStrictlyMoreThanMinDelta) {
  bp::EarlyStopping es(10, 0.25);
  EXPECT_FALSE(es.update(0.5));
  EXPECT_FALSE(es.update(0.75));  // 0.75 - 0.25 == 0.5, not > best
  EXPECT_EQ(es.wait(), 1);
  EXPECT_DOUBLE_EQ(es.best(), 0.5);
  EXPECT_FALSE(es.update(0.875));  // 0.625 > 0.5: improvement
  EXPECT_EQ(es.wait(), 0);
  EXPECT_DOUBLE_EQ(es.best(), 0.875);
}

TEST(EarlyStopping, ZeroMinDeltaEqualValueIsNoImprovement) {
  bp::EarlyStopping es(2, 0.0);
  EXPECT_FALSE(es.update(0.5));
  EXPECT_FALSE(es.update(0.5));
  EXPECT_TRUE(es.update(0.5));
}

TEST(EarlyStopping, ImprovementResetsTheCounter) {
  bp::EarlyStopping es(3, 0.0);
  EXPECT_FALSE(es.update(0.5));
  EXPECT_FALSE(es.update(0.4));
  EXPECT_FALSE(es.update(0.3));
  EXPECT_EQ(es.wait(), 2);
  EXPECT_FALSE(es.update(0.55));  // improvement: counter back to 0
  EXPECT_EQ(es.wait(), 0);
  EXPECT_FALSE(es.update(0.5));
  EXPECT_FALSE(es.update(0.5));
  EXPECT_TRUE(es.update(0.5));  // three more non-improving epochs needed
}

TEST(EarlyStopping, WorseValuesStopAfterPatience) {
  bp::EarlyStopping es(1, 0.0);
  EXPECT_FALSE(es.update(0.9));
  EXPECT_TRUE(es.update(0.8));
}

TEST(EarlyStopping, RestoreResumesTheState) {
  bp::EarlyStopping a(3, 0.001);
  a.update(0.5);
  a.update(0.7);
  a.update(0.69);
  a.update(0.7005);
  ASSERT_EQ(a.wait(), 2);

  bp::EarlyStopping b(3, 0.001);
  b.restore(a.best(), a.wait());
  EXPECT_DOUBLE_EQ(b.best(), 0.7);
  EXPECT_EQ(b.wait(), 2);
  EXPECT_TRUE(b.update(0.7));  // one more non-improving epoch: stop

  bp::EarlyStopping c(3, 0.001);
  c.restore(0.7, 2);
  EXPECT_FALSE(c.update(0.8));  // an improvement after restore resets
  EXPECT_EQ(c.wait(), 0);
  EXPECT_DOUBLE_EQ(c.best(), 0.8);
}

bool is_permutation_of_iota(const std::vector<int32_t>& p, int64_t n) {
  if (static_cast<int64_t>(p.size()) != n) return false;
  std::vector<int32_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < n; ++i)
    if (sorted[size_t(i)] != i) return false;
  return true;
}

TEST(Shuffle, EpochPermutationIsAPermutation) {
  for (int64_t n : {0, 1, 2, 7, 1000, 60000}) {
    const auto p = bp::epoch_permutation(n, 42, 3);
    EXPECT_TRUE(is_permutation_of_iota(p, n)) << "n=" << n;
  }
}

TEST(Shuffle, SameArgumentsGiveTheSameOrder) {
  EXPECT_EQ(bp::epoch_permutation(5000, 7, 11), bp::epoch_permutation(5000, 7, 11));
}

TEST(Shuffle, DiffersBetweenEpochsAndSeeds) {
  const auto base = bp::epoch_permutation(1000, 7, 0);
  EXPECT_NE(base, bp::epoch_permutation(1000, 7, 1));
  EXPECT_NE(base, bp::epoch_permutation(1000, 8, 0));
  EXPECT_NE(bp::epoch_permutation(1000, 7, 1), bp::epoch_permutation(1000, 7, 2));
  // And it actually shuffles.
  std::vector<int32_t> identity(1000);
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_NE(base, identity);
}

TEST(Shuffle, EpochPermutationIsTheShuffleStream) {
  EXPECT_EQ(bp::epoch_permutation(300, 5, 4),
            bp::seeded_permutation(300, 5, bp::RngStream::kShuffle, 4));
  EXPECT_NE(bp::epoch_permutation(300, 5, 4),
            bp::seeded_permutation(300, 5, bp::RngStream::kSplit, 4));
}

// The backend op (what BatchLoader::shuffle and the GPU use) makes the same order as the
// host function, including the degenerate sizes.
TEST(Shuffle, BackendPermutationEqualsTheHostOne) {
  auto be = bp::make_cpu_backend(1);
  for (int64_t n : {1, 2, 999, 60000}) {
    bp::Tensor order = be->empty({n}, bp::DType::I32);
    be->seeded_permutation(order, 42, bp::RngStream::kShuffle, 3);
    std::vector<int32_t> got(static_cast<size_t>(n));
    be->copy_to_host(order, got.data());
    EXPECT_EQ(got, bp::seeded_permutation(n, 42, bp::RngStream::kShuffle, 3)) << n << " items";
  }
}

}  // namespace
