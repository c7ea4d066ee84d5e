// Data on the GPU: the batch gather (uint8 pixels through the epoch order, scaled to [0, 1])
// and the seeded epoch permutation (Philox keys sorted on the device) against the CPU.
#include <numeric>
#include <string>

#include "gpu_parity.h"
#include "train/shuffle.h"

namespace bp::test {
namespace {

TEST_F(GpuParity, GatherBatchThroughTheOrder) {
  const int64_t count = 50, h = 5, w = 4, c = 3, width = h * w * c;
  std::vector<uint8_t> pixels(size_t(count * width));
  const std::vector<int32_t> raw = random_ints(count * width, 1, 0, 256);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = uint8_t(raw[i]);
  pixels[0] = 0;
  pixels[1] = 255;
  const std::vector<int32_t> labels = random_ints(count, 2, 0, 10);
  // An order with every image once (a shuffled permutation), longer tail for `first` > 0.
  std::vector<int32_t> order(static_cast<size_t>(count));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937 gen(3);
  std::shuffle(order.begin(), order.end(), gen);

  auto [ci, gi] = both({count, h, w, c}, pixels);
  auto [cl, gl] = both({count}, labels);
  auto [co, go] = both({count}, order);
  for (const auto& [first, rows] : {std::pair<int64_t, int64_t>{7, 20}, std::pair<int64_t, int64_t>{0, 50},
                                   std::pair<int64_t, int64_t>{49, 1}}) {
    const std::string what = "gather_batch first " + std::to_string(first) + " rows " +
                             std::to_string(rows);
    auto [cx, gx] = outputs({rows, h, w, c});
    auto [cy, gy] = outputs({rows}, DType::I32);
    cpu_->gather_batch(ci, cl, co, first, cx, cy);
    gpu_->gather_batch(gi, gl, go, first, gx, gy);
    // pixel * (1/255) in float on both: the same single rounding (1e-7 covers a last-ulp
    // difference if a compiler ever divided instead).
    expect_close(cx, gx, 1e-7, 1e-7, what + " x");
    expect_equal_values(host<int32_t>(*cpu_, cy), host<int32_t>(*gpu_, gy), what + " y");
  }
}

TEST_F(GpuParity, GatherBatchIntoAViewOfALargerBuffer) {
  // The loader's partial last batch: x and y are the first rows of max-batch buffers.
  const int64_t count = 10, width = 6;
  std::vector<uint8_t> pixels(size_t(count * width));
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = uint8_t(i * 7);
  std::vector<int32_t> labels(static_cast<size_t>(count)), order(static_cast<size_t>(count));
  std::iota(labels.begin(), labels.end(), 100);
  std::iota(order.rbegin(), order.rend(), 0);  // reversed
  auto [ci, gi] = both({count, width}, pixels);
  auto [cl, gl] = both({count}, labels);
  auto [co, go] = both({count}, order);
  auto [cx, gx] = outputs({8, width});
  auto [cy, gy] = outputs({8}, DType::I32);
  Tensor cxv = cx.rows(3), gxv = gx.rows(3), cyv = cy.rows(3), gyv = gy.rows(3);
  cpu_->gather_batch(ci, cl, co, 7, cxv, cyv);
  gpu_->gather_batch(gi, gl, go, 7, gxv, gyv);
  expect_close(cxv, gxv, 1e-7, 1e-7, "gather into a view");
  expect_equal_values(host<int32_t>(*cpu_, cyv), host<int32_t>(*gpu_, gyv), "labels into a view");
  EXPECT_EQ(host<int32_t>(*gpu_, gyv), (std::vector<int32_t>{102, 101, 100}));
  // Rows past the view are untouched (still the poison).
  const std::vector<float> all = host<float>(*gpu_, gx);
  for (size_t i = size_t(3 * width); i < all.size(); ++i) EXPECT_TRUE(std::isnan(all[i])) << i;
}

TEST_F(GpuParity, SeededPermutationSameOrderAsTheCpu) {
  for (const int64_t count : {int64_t(1), int64_t(1000), int64_t(60000)})
    for (const uint32_t round : {0u, 3u}) {
      const std::string what = "seeded_permutation count " + std::to_string(count) + " round " +
                               std::to_string(round);
      auto [co, go] = outputs({count}, DType::I32);
      cpu_->seeded_permutation(co, 42, RngStream::kShuffle, round);
      gpu_->seeded_permutation(go, 42, RngStream::kShuffle, round);
      const std::vector<int32_t> a = host<int32_t>(*cpu_, co), g = host<int32_t>(*gpu_, go);
      expect_equal_values(a, g, what);
      // And the host helper the trainer's CPU paths use.
      expect_equal_values(seeded_permutation(count, 42, RngStream::kShuffle, round), g,
                          what + " (shuffle.h)");
      // A permutation: every index exactly once.
      std::vector<int32_t> sorted = g;
      std::sort(sorted.begin(), sorted.end());
      std::vector<int32_t> iota(static_cast<size_t>(count));
      std::iota(iota.begin(), iota.end(), 0);
      EXPECT_EQ(sorted, iota) << what;
    }
  // Seeds and rounds matter.
  Tensor a = gpu_->empty({1000}, DType::I32), b = gpu_->empty({1000}, DType::I32);
  gpu_->seeded_permutation(a, 42, RngStream::kShuffle, 0);
  gpu_->seeded_permutation(b, 42, RngStream::kShuffle, 1);
  EXPECT_NE(host<int32_t>(*gpu_, a), host<int32_t>(*gpu_, b));
}

}  // namespace
}  // namespace bp::test
