// Each GPU op once at the sizes of a real run against the CPU backend: batch 128, Tiny
// ImageNet's 64x64x3 images and 200 classes. The small-shape tests elsewhere pin down the
// semantics (odd sizes, padding sides, ties); these check what only large shapes reach: grids
// of thousands of blocks, batch norm and bias sums over hundreds of thousands of rows (thousands
// of 256-row chunks of kernels/cuda/column_sums.cuh), element-wise grids of 65,536 blocks
// (16.8 M elements), and the column sums past the gridDim.y limit of 65535 (more than 65535 * 256 =
// 16,777,216 rows, where a block row walks several chunks). No tensor here reaches 2^31
// elements: 64-bit indexing is not what these test. Sizes are chosen so that each test runs in a few seconds on the
// emulated device (about 1000x slower than a GPU); each test prints its time.
#include <chrono>
#include <cstdio>
#include <numeric>
#include <string>

#include "gpu_parity.h"
#include "math/heads.h"

namespace bp::test {
namespace {

// Batch 128 of 64x64 maps: 524,288 rows (2048 column-sum chunks).
constexpr int kBatch = 128, kSide = 64;
constexpr int64_t kMapRows = int64_t(kBatch) * kSide * kSide;

// A cheap pseudo-random integer per index (random_floats' mt19937 takes seconds for the
// 17 M-element tensors here): a 64-bit mix of (index, seed).
inline uint32_t hash_index(uint64_t i, uint64_t seed) {
  uint64_t z = i * 0x9e3779b97f4a7c15ULL + seed;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return uint32_t((z ^ (z >> 31)) >> 32);
}

// Floats in [lo, hi) from hash_index: random_floats for the large tensors, at a fraction of
// the cost.
std::vector<float> fast_floats(int64_t n, uint64_t seed, float lo = -1.f, float hi = 1.f) {
  std::vector<float> v(static_cast<size_t>(n));
  const float scale = (hi - lo) / 16777216.f;
  for (size_t i = 0; i < v.size(); ++i) v[i] = lo + float(hash_index(i, seed) >> 8) * scale;
  return v;
}

class GpuRealisticSizes : public GpuParity {
 protected:
  void SetUp() override {
    GpuParity::SetUp();
    start_ = std::chrono::steady_clock::now();
  }
  void TearDown() override {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    std::printf("[   time   ] %s: %.2f s\n",
                ::testing::UnitTest::GetInstance()->current_test_info()->name(), s);
  }

  // Random values on both backends (fast_floats): for the large tensors.
  std::pair<Tensor, Tensor> fast_pair(const Shape& shape, uint64_t seed, float lo = -1.f,
                                      float hi = 1.f) {
    return both(shape, fast_floats(shape_elements(shape), seed, lo, hi));
  }

  // Host values -> a float vector (for references computed on the host).
  static std::vector<float> as_floats(const std::vector<double>& v) {
    return std::vector<float>(v.begin(), v.end());
  }

  std::chrono::steady_clock::time_point start_;
};

// --- patch layers at 64x64 ---

// Tolerance of forward and backward data: 1e-4 relative, floored at the CPU output's rms, as in
// test_gpu_patch_ops.cpp. Each output is a float32 sum of K products (27 for a 3x3x3 patch, 288
// for 3x3x32, 9 x out_c for backward data) added in different orders; ~sqrt(K) ulps of the
// terms' size, below 1e-5 of the rms. A misplaced window or a wrong padding side is O(rms) off.
constexpr double kPatchTol = 1e-4;
// The weight update sums batch x positions products per weight: 128 x 4096 = 524,288 for the
// first conv layer. The CPU accumulates in float32 (blocked GEMM over the patch matrix), the
// emulated cuDNN in float64, our local2d kernels in float32 tiles: the CPU's rounding grows
// like sqrt(terms) ulps of the partial sums (measured on the emulator: worst 3e-6 of the rms at
// these sizes), so 1e-4 of the rms (with step 1, where the gradient dominates the result) still holds; a
// dropped sample or position is ~1/sqrt(batch) of the rms off.
constexpr double kUpdateTol = 1e-4;

class GpuRealisticPatch : public GpuRealisticSizes {
 protected:
  void check(const std::string& name, bool local, const Conv2dGeometry& g) {
    const Shape xs{g.batch, g.in_h, g.in_w, g.in_c}, ys{g.batch, g.out_h, g.out_w, g.out_c};
    const Shape ws = local ? Shape{g.positions(), g.out_c, g.patch_size()}
                           : Shape{g.out_c, g.kernel_h, g.kernel_w, g.in_c};
    auto fwd = local ? &Backend::local2d_forward : &Backend::conv2d_forward;
    auto bwd = local ? &Backend::local2d_backward_data : &Backend::conv2d_backward_data;
    auto upd = local ? &Backend::local2d_update : &Backend::conv2d_update;
    auto [cx, gx] = random_pair(xs, 1, 0.f, 1.f);  // pixels / activations: non-negative
    auto [cw, gw] = random_pair(ws, 2);
    {
      auto [cy, gy] = outputs(ys);
      (cpu_.get()->*fwd)(cx, cw, cy, g);
      (gpu_.get()->*fwd)(gx, gw, gy, g);
      expect_close(cy, gy, kPatchTol, cpu_rms(cy), name + " forward");
    }
    auto [cdy, gdy] = random_pair(ys, 3);
    {
      auto [cdx, gdx] = outputs(xs);
      (cpu_.get()->*bwd)(cdy, cw, cdx, g);
      (gpu_.get()->*bwd)(gdy, gw, gdx, g);
      expect_close(cdx, gdx, kPatchTol, cpu_rms(cdx), name + " backward data");
    }
    {
      // Step 1 (decay 0.5): the summed gradient dominates the updated weight.
      auto [cw2, gw2] = random_pair(ws, 4);
      (cpu_.get()->*upd)(cw2, cdy, cx, g, 0.5, 1.0);
      (gpu_.get()->*upd)(gw2, gdy, gx, g, 0.5, 1.0);
      expect_close(cw2, gw2, kUpdateTol, cpu_rms(cw2), name + " update");
    }
  }
};

TEST_F(GpuRealisticPatch, Conv2dFirstLayer128x64x64x3To32) {
  // The conv net's first layer on Tiny ImageNet: 3x3 stride 1 'same', 32 filters, batch 128.
  Conv2dGeometry g = make_conv_geometry(kSide, kSide, 3, 32, 3, 3, 1, 1, true);
  g.batch = kBatch;
  check("conv2d 128x64x64x3 k3s1 same -> 32", false, g);
}

TEST_F(GpuRealisticPatch, Conv2dSecondLayer64x32Stride2SameAsymmetric) {
  // Its second layer: 32 -> 32 channels, 3x3 stride 2 'same' on an even map (TF's asymmetric
  // bottom/right padding, the zero-extended copy for cuDNN). Batch 32 keeps the emulated
  // cuDNN (float64 loops) within seconds: 2.4 G multiply-adds per op at batch 128.
  Conv2dGeometry g = make_conv_geometry(kSide, kSide, 32, 32, 3, 3, 2, 2, true);
  g.batch = 32;
  check("conv2d 32x64x64x32 k3s2 same -> 32", false, g);
}

TEST_F(GpuRealisticPatch, Local2dFirstLayer32x64x64x3To32) {
  // The locally connected net's first layer on Tiny ImageNet at its own batch size (32):
  // 3x3 'valid', 62 x 62 = 3844 positions, each with its own 32 x 27 filter bank (3.3 M weights).
  Conv2dGeometry g = make_conv_geometry(kSide, kSide, 3, 32, 3, 3, 1, 1, false);
  g.batch = 32;
  check("local2d 32x64x64x3 k3s1 valid -> 32", true, g);
}

// --- dense layers at batch 128 ---

TEST_F(GpuRealisticSizes, GemmDenseLayerBatch128) {
  // The conv net's dense layer on Tiny ImageNet after the stride-2 layer: 32 x 32 x 32 = 32768
  // inputs -> 500 units, 2.1 G multiply-adds per GEMM: y = x W^T, dx = dy W and
  // W = decay W - step dy^T x. Tolerance as test_gpu_dense_ops.cpp: 1e-4 relative, floored at
  // the rms: the forward's K = 32768 float32 dot products round to ~sqrt(K) ulps ~ 2e-5 of it
  // (measured on the emulator: 1.7e-5).
  const int64_t in = 32768, units = 500;
  auto [cx, gx] = random_pair({kBatch, in}, 11);
  auto [cw, gw] = random_pair({units, in}, 12);
  auto [cdy, gdy] = random_pair({kBatch, units}, 13);
  {
    auto [cy, gy] = outputs({kBatch, units});
    cpu_->gemm(false, true, 1.0, cx, cw, 0.0, cy);
    gpu_->gemm(false, true, 1.0, gx, gw, 0.0, gy);
    expect_close(cy, gy, 1e-4, cpu_rms(cy), "dense forward 128x32768 -> 500");
  }
  {
    auto [cdx, gdx] = outputs({kBatch, in});
    cpu_->gemm(false, false, 1.0, cdy, cw, 0.0, cdx);
    gpu_->gemm(false, false, 1.0, gdy, gw, 0.0, gdx);
    expect_close(cdx, gdx, 1e-4, cpu_rms(cdx), "dense backward data 128x500 -> 32768");
  }
  {
    // The update as the trainer writes it (alpha -lr/B, beta 1 - 2 lr l2), with lr 10 so the
    // 128-term gradient is not lost below the weight's own rounding.
    cpu_->gemm(true, false, -10.0 / kBatch, cdy, cx, 0.999, cw);
    gpu_->gemm(true, false, -10.0 / kBatch, gdy, gx, 0.999, gw);
    expect_close(cw, gw, 1e-4, cpu_rms(cw), "dense update 500x32768 over 128 samples");
  }
}

TEST_F(GpuRealisticSizes, OutputLayerGatherAndScatterBatch128x200) {
  // BrainProp's output layer for 200 classes on a 500-unit layer: the feedback row gather
  // (ReLU-gated) and the scatter update of the selected rows, most units chosen 0-3 times.
  const int64_t units = 200, cols = 500;
  const std::vector<int32_t> index = random_ints(kBatch, 21, 0, int32_t(units));
  const std::vector<float> scale = random_floats(kBatch, 22);
  std::vector<float> y = random_floats(kBatch * cols, 23);
  for (float& v : y) v = v > 0 ? v : 0.f;
  auto [cw, gw] = random_pair({units, cols}, 24);
  auto [ci, gi] = both({kBatch}, index);
  auto [cs, gs] = both({kBatch}, scale);
  auto [cy, gy] = both({kBatch, cols}, y);
  auto [co, go] = outputs({kBatch, cols});
  cpu_->gather_rows_scaled_gated(cw, ci, cs, cy, co);
  gpu_->gather_rows_scaled_gated(gw, gi, gs, gy, go);
  expect_close(co, go, 1e-6, 1e-6, "gather_rows_scaled_gated 128x500");  // one product each
  cpu_->scatter_update_rows(cw, ci, cs, cy, 0.999, 0.05);
  gpu_->scatter_update_rows(gw, gi, gs, gy, 0.999, 0.05);
  // As test_gpu_dense_ops.cpp: sequential subtraction vs a sum first, a few terms of <= 0.05.
  expect_close(cw, gw, 1e-5, 0.1, "scatter_update_rows 200x500 batch 128");
  auto [cb, gb] = random_pair({units}, 25);
  cpu_->scatter_update_bias(cb, ci, cs, 0.999, 0.05);
  gpu_->scatter_update_bias(gb, gi, gs, 0.999, 0.05);
  expect_close(cb, gb, 1e-5, 0.1, "scatter_update_bias 200 batch 128");
}

// --- column sums over hundreds of thousands of rows ---

// Exact sums on the host in float64 (the reference the GPU's float64 chunk sums round to).
std::vector<double> column_sums_f64(const std::vector<float>& m, int64_t rows, int64_t cols) {
  std::vector<double> s(size_t(cols), 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) s[size_t(c)] += double(m[size_t(r * cols + c)]);
  return s;
}

TEST_F(GpuRealisticSizes, UpdateBiasOverBatchTimesMapRows) {
  // A conv layer's bias: sums over rows = 128 x 64 x 64 = 524,288 (2048 chunks) x 32 channels,
  // and a dense layer's over 128 rows x 500 units (one chunk: the one-launch path).
  using Case = std::pair<int64_t, int64_t>;
  for (auto [rows, cols] : {Case{kMapRows, 32}, Case{kBatch, 500}}) {
    const std::string what = "update_bias " + std::to_string(rows) + "x" + std::to_string(cols);
    const std::vector<float> dy = fast_floats(rows * cols, uint64_t(rows + cols));
    const std::vector<float> b0 = random_floats(cols, uint32_t(cols));
    auto [cd, gd] = both({rows, cols}, dy);
    auto [cb, gb] = both({cols}, b0);
    // step 1 / sqrt(rows): the summed term is O(1), like the O(1) bias.
    const double decay = 0.999, step = 1.0 / std::sqrt(double(rows));
    cpu_->update_bias(cb, cd, decay, step);
    gpu_->update_bias(gb, gd, decay, step);
    // Against the CPU backend: the CPU sums each column serially in float32. Over 524,288
    // terms of O(1) its partial sums reach ~1e3 (ulp 6e-5), and the rounding random-walks to
    // ~sqrt(rows) * 3e-5 ~ 0.02 absolute on a sum of ~400; after the step (1.4e-3) that is
    // ~3e-5 absolute on the O(1) bias. 5e-4 relative (floor 0.1, i.e. 5e-5 absolute near 0)
    // covers it (measured on the emulator: 7e-5 relative); a lost 256-row chunk moves the bias
    // by ~step * 9 ~ 1.3e-2.
    expect_close(cb, gb, 5e-4, 0.1, what + " vs the CPU backend");
    // Against float64 sums on the host: the GPU sums in float64 (exact to ~1e-16), so only
    // the final float arithmetic (decay * b - step * float(sum), one FMA on a real GPU)
    // differs: 1e-6 relative with a 1e-2 floor.
    const std::vector<double> s = column_sums_f64(dy, rows, cols);
    std::vector<double> want(static_cast<size_t>(cols));
    for (int64_t c = 0; c < cols; ++c)
      want[size_t(c)] = double(float(decay) * b0[size_t(c)] - float(step) * float(s[size_t(c)]));
    expect_close_values(as_floats(want), host<float>(*gpu_, gb), 1e-6, 1e-2,
                        what + " vs float64 sums");
  }
}

TEST_F(GpuRealisticSizes, BatchNormOverBatchTimesMapRows) {
  // Batch norm after the first conv layer: 524,288 rows (2048 chunks) x 32 channels; forward
  // (training and evaluation) and backward with dx.
  // Tolerance as test_gpu_norm_pool_dropout.cpp: both backends sum in float64 and round the
  // statistics to float, so the element-wise results agree to a last-ulp difference plus the
  // GPU's fused multiply-adds: 1e-5 relative, 0.1 floor. The sums' order (serial vs 256-row
  // chunks) does not show at 1e-16 relative over 5e5 terms.
  const Shape shape{kBatch, kSide, kSide, 32};
  const int64_t channels = 32;
  auto [cx, gx] = fast_pair(shape, 31, 1.f, 5.f);
  auto [cg, gg] = random_pair({channels}, 32, 0.5f, 1.5f);
  auto [cb, gb] = random_pair({channels}, 33, -0.5f, 0.5f);
  auto [crm, grm] = random_pair({channels}, 34, -1.f, 1.f);
  auto [crv, grv] = random_pair({channels}, 35, 0.5f, 2.f);
  auto [cm, gm] = outputs({channels});
  auto [ci, gi] = outputs({channels});
  {
    auto [cy, gy] = outputs(shape);
    cpu_->batchnorm_forward_train(cx, cg, cb, cy, cm, ci, crm, crv, 0.99, 1e-3);
    gpu_->batchnorm_forward_train(gx, gg, gb, gy, gm, gi, grm, grv, 0.99, 1e-3);
    expect_close(cy, gy, 1e-5, 0.1, "bn train y");
    expect_close(cm, gm, 1e-5, 0.1, "bn saved_mean");
    expect_close(ci, gi, 1e-5, 0.1, "bn saved_inv_std");
    expect_close(crm, grm, 1e-5, 0.1, "bn running_mean");
    expect_close(crv, grv, 1e-5, 0.1, "bn running_var");
    auto [cye, gye] = outputs(shape);
    cpu_->batchnorm_forward_eval(cx, cg, cb, crm, crv, 1e-3, cye);
    gpu_->batchnorm_forward_eval(gx, gg, gb, grm, grv, 1e-3, gye);
    expect_close(cye, gye, 1e-5, 0.1, "bn eval y");
  }
  auto [cdy, gdy] = fast_pair(shape, 36);
  auto [cdx, gdx] = outputs(shape);
  // step 1e-3: sum dy over 5e5 rows is ~4e2, so gamma and beta move by O(0.4).
  cpu_->batchnorm_backward(cdy, cx, cm, ci, cg, cb, &cdx, 0.999, 1e-3);
  gpu_->batchnorm_backward(gdy, gx, gm, gi, gg, gb, &gdx, 0.999, 1e-3);
  expect_close(cdx, gdx, 1e-5, 0.1, "bn dx");
  expect_close(cg, gg, 1e-5, 0.1, "bn gamma after update");
  expect_close(cb, gb, 1e-5, 0.1, "bn beta after update");
}

// --- column sums past the grid limit: more than 65535 chunks of 256 rows ---

// 17,000,000 rows: 66,407 chunks, so 872 block rows each take a second chunk.
constexpr int64_t kHugeRows = 17'000'000;
constexpr int64_t kGridLimitRows = int64_t(65535) * 256;  // what one launch's grid reached before
static_assert(kHugeRows > kGridLimitRows, "must pass the gridDim.y limit");


TEST_F(GpuRealisticSizes, UpdateBiasPastTheGridLimit17MRows) {
  // dy [17,000,000 x 1] holding multiples of 1/4 in [-0.75, 1]: every partial sum, serial
  // (the CPU's float32) or in chunks (the GPU's float64), is a multiple of 1/4 below 2^22 in
  // size, so exactly representable in float: both sums are the exact sum, whatever the order.
  // With decay 0.5 and step 2^-22 (powers of two: exact products) the new bias is one rounding
  // of an exact value on both backends, with or without FMA: equal bit for bit (tolerance 0).
  // The values' mean is 1/8, so rows lost past chunk 65535 (the bug the grid-stride loop fixed:
  // 222,464 rows), or counted twice, change the sum by ~28,000 out of ~2.1 M.
  std::vector<float> dy(static_cast<size_t>(kHugeRows));
  for (size_t i = 0; i < dy.size(); ++i) dy[i] = float(int(hash_index(i, 41) % 8) - 3) * 0.25f;
  double exact = 0;  // the exact sum (every partial sum an integer multiple of 1/4 < 2^50)
  double tail = 0;   // the rows the old grid (gridDim.y = 65535 chunks at most) could not reach
  for (size_t i = 0; i < dy.size(); ++i) {
    exact += dy[i];
    if (int64_t(i) >= kGridLimitRows) tail += dy[i];
  }
  ASSERT_GT(std::abs(tail), 1000.0) << "the test needs the rows past the limit to matter";
  const std::vector<float> b0 = {0.375f};
  auto [cd, gd] = both({kHugeRows, 1}, dy);
  auto [cb, gb] = both({1}, b0);
  const double decay = 0.5, step = std::ldexp(1.0, -22);
  cpu_->update_bias(cb, cd, decay, step);
  gpu_->update_bias(gb, gd, decay, step);
  const float want = float(0.5 * 0.375 - std::ldexp(exact, -22));
  const float got_cpu = host<float>(*cpu_, cb)[0], got_gpu = host<float>(*gpu_, gb)[0];
  EXPECT_EQ(got_cpu, want) << "the CPU reference itself (exact sum " << exact << ")";
  EXPECT_EQ(got_gpu, want) << "GPU update_bias over " << kHugeRows << " rows: exact sum " << exact
                           << ", the rows past chunk 65535 sum to " << tail << "; the GPU's bias "
                           << got_gpu << " implies a sum of "
                           << (0.5 * 0.375 - double(got_gpu)) * std::ldexp(1.0, 22);
  EXPECT_EQ(got_gpu, got_cpu);
}

TEST_F(GpuRealisticSizes, BatchNormPastTheGridLimit17MRows) {
  // Batch norm's training forward over 17,000,000 rows x 1 channel: the mean, then the
  // variance around it, each a grid-stride column sum with its own finish (the backward's two
  // sums are the same template, covered above by update_bias). The rows past chunk 65535 get
  // a shifted distribution ([3, 5) instead of [1, 3)): statistics that miss them or count them
  // twice are off by ~1% in the mean and ~5% in the variance.
  // Tolerance as the other batch-norm tests (1e-5 relative, floor 0.1): both backends sum in
  // float64 (~1e-16 relative per term, ~1e-9 over 1.7e7 terms in the worst order), far below.
  std::vector<float> x(static_cast<size_t>(kHugeRows));
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = 1.f + float(hash_index(i, 51) >> 8) * (2.f / 16777216.f) +  // [1, 3)
           (int64_t(i) >= kGridLimitRows ? 2.f : 0.f);
  auto [cx, gx] = both({kHugeRows, 1}, x);
  auto [cg, gg] = both({1}, std::vector<float>{1.25f});
  auto [cb, gb] = both({1}, std::vector<float>{-0.25f});
  auto [crm, grm] = both({1}, std::vector<float>{0.5f});
  auto [crv, grv] = both({1}, std::vector<float>{1.5f});
  auto [cm, gm] = outputs({1});
  auto [ci, gi] = outputs({1});
  auto [cy, gy] = outputs({kHugeRows, 1});
  cpu_->batchnorm_forward_train(cx, cg, cb, cy, cm, ci, crm, crv, 0.99, 1e-3);
  gpu_->batchnorm_forward_train(gx, gg, gb, gy, gm, gi, grm, grv, 0.99, 1e-3);
  expect_close(cm, gm, 1e-5, 0.1, "bn 17M rows saved_mean");
  expect_close(ci, gi, 1e-5, 0.1, "bn 17M rows saved_inv_std");
  // The running averages take 1% of the batch statistics (momentum 0.99): a mean 1.3% off
  // still moves running_mean by ~5e-4 relative, 50x the tolerance.
  expect_close(crm, grm, 1e-5, 0.1, "bn 17M rows running_mean");
  expect_close(crv, grv, 1e-5, 0.1, "bn 17M rows running_var");
  expect_close(cy, gy, 1e-5, 0.1, "bn 17M rows train y");
}

// --- element-wise ops on 64x64 maps ---

TEST_F(GpuRealisticSizes, MaxPool128x64x64x32) {
  // 2x2 stride 2 after the first conv layer: 16.8 M inputs, 4.2 M windows. Quantised inputs
  // (four levels) give many tied maxima. Forward is a selection (exact); backward puts each dy
  // on its window's first maximum, a single dy per input with stride = pool (exact too; the
  // 1e-6 with floor 1 of the small-shape test would allow a reordering).
  const Pool2dGeometry base = make_pool_geometry(kSide, kSide, 32, 2, 2);
  Pool2dGeometry g = base;
  g.batch = kBatch;
  const Shape xs{kBatch, kSide, kSide, 32}, ys{kBatch, g.out_h, g.out_w, 32};
  std::vector<float> x = fast_floats(shape_elements(xs), 61, 0.f, 4.f);
  for (float& v : x) v = std::floor(v);
  auto [cx, gx] = both(xs, x);
  auto [cy, gy] = outputs(ys);
  cpu_->maxpool2d_forward(cx, cy, g);
  gpu_->maxpool2d_forward(gx, gy, g);
  expect_close(cy, gy, 0.0, 1.0, "maxpool forward 128x64x64x32");
  auto [cdy, gdy] = fast_pair(ys, 62);
  auto [cdx, gdx] = outputs(xs);
  cpu_->maxpool2d_backward(cdy, cx, cdx, g);
  gpu_->maxpool2d_backward(gdy, gx, gdx, g);
  expect_close(cdx, gdx, 1e-6, 1.0, "maxpool backward 128x64x64x32");
}

TEST_F(GpuRealisticSizes, ReluDropoutAndBiasOn128x64x64x32) {
  // The first conv layer's maps at batch 128, 16.8 M elements (grids of 65,536 blocks): ReLU and its gate (selections: exact), the dropout mask (the same Philox
  // draws: exact up to the 1e-6 of one float product), the conv bias add (one addition: 1e-6).
  const Shape shape{kBatch, kSide, kSide, 32};
  auto [cx, gx] = fast_pair(shape, 71);
  auto [cy, gy] = outputs(shape);
  cpu_->relu_forward(cx, cy);
  gpu_->relu_forward(gx, gy);
  expect_close(cy, gy, 0.0, 1.0, "relu_forward");
  auto [cdy, gdy] = fast_pair(shape, 72);
  auto [cdx, gdx] = outputs(shape);
  cpu_->relu_feedback(cdy, cy, cdx);
  gpu_->relu_feedback(gdy, gy, gdx);
  expect_close(cdx, gdx, 0.0, 1.0, "relu_feedback");
  auto [cd, gd] = outputs(shape);
  const uint64_t step = (uint64_t(1) << 32) + 77;
  cpu_->dropout_apply(cx, cd, 0.3f, 5, step, 3);
  gpu_->dropout_apply(gx, gd, 0.3f, 5, step, 3);
  expect_close(cd, gd, 1e-6, 1e-6, "dropout 0.3");
  auto [cbias, gbias] = random_pair({32}, 73);
  cpu_->add_row_bias(cx, cbias);
  gpu_->add_row_bias(gx, gbias);
  expect_close(cx, gx, 1e-6, 1e-6, "add_row_bias");
}

// --- heads at 128 x 200 ---

TEST_F(GpuRealisticSizes, HeadsBatch128x200Classes) {
  const int64_t classes = 200;
  std::vector<float> logits = random_floats(kBatch * classes, 81, -2.f, 2.f);
  std::vector<int32_t> labels = random_ints(kBatch, 82, 0, int32_t(classes));
  for (int64_t b = 0; b < kBatch; b += 3)
    labels[size_t(b)] = argmax_row(logits.data() + b * classes, int(classes));
  auto [cl, gl] = both({kBatch, classes}, logits);
  auto [cy, gy] = both({kBatch}, labels);
  const std::vector<double> zero(kStatCount, 0.0);
  for (const float epsilon : {0.02f, 1.0f}) {
    const std::string what = "brainprop_head 128x200 epsilon " + std::to_string(epsilon);
    auto [ca, ga] = outputs({kBatch}, DType::I32);
    auto [ce, ge] = outputs({kBatch});
    auto [cs, gs] = both({kStatCount}, zero);
    const BrainPropHeadArgs args{epsilon, 20240611, (uint64_t(1) << 32) + 99};
    cpu_->brainprop_head(cl, cy, args, ca, ce, cs);
    gpu_->brainprop_head(gl, gy, args, ga, ge, gs);
    // The same Philox draws and exp/log in double on both: the same actions (see
    // test_gpu_heads.cpp), then err is the same float subtraction (1e-6).
    expect_equal_values(host<int32_t>(*cpu_, ca), host<int32_t>(*gpu_, ga), what + " actions");
    expect_close(ce, ge, 1e-6, 1e-6, what + " err");
    const std::vector<double> sc = host<double>(*cpu_, cs), sg = host<double>(*gpu_, gs);
    // Loss: a float64 sum in another order (1e-5 relative is far above it); counts exact.
    EXPECT_NEAR(sg[kStatLoss], sc[kStatLoss], 1e-5 * std::abs(sc[kStatLoss])) << what;
    for (int k : {int(kStatCorrect), int(kStatReward), int(kStatExplored), int(kStatSamples)})
      EXPECT_EQ(sg[size_t(k)], sc[size_t(k)]) << what << " stat " << k;
    EXPECT_EQ(sg[kStatSamples], double(kBatch)) << what;
  }
  {
    auto [cgr, ggr] = outputs({kBatch, classes});
    auto [cs, gs] = both({kStatCount}, zero);
    cpu_->softmax_xent_head(cl, cy, cgr, cs);
    gpu_->softmax_xent_head(gl, gy, ggr, gs);
    // As test_gpu_heads.cpp: one exp per probability, 1e-5 relative with a 1e-3 floor.
    expect_close(cgr, ggr, 1e-5, 1e-3, "softmax_xent_head 128x200 grad");
    const std::vector<double> sc = host<double>(*cpu_, cs), sg = host<double>(*gpu_, gs);
    EXPECT_NEAR(sg[kStatLoss], sc[kStatLoss], 1e-5 * std::abs(sc[kStatLoss]));
    EXPECT_EQ(sg[kStatCorrect], sc[kStatCorrect]);
    EXPECT_EQ(sg[kStatSamples], sc[kStatSamples]);
  }
  {
    // Evaluation batch 1000 x 200 (the trainer's eval_batch).
    const int64_t eval = 1000;
    std::vector<float> el = random_floats(eval * classes, 83, 0.f, 4.f);
    for (float& v : el) v = std::floor(v);  // ties: the first maximum counts
    std::vector<int32_t> ey = random_ints(eval, 84, 0, int32_t(classes));
    for (int64_t b = 0; b < eval; b += 2) ey[size_t(b)] = argmax_row(el.data() + b * classes, int(classes));
    auto [cel, gel] = both({eval, classes}, el);
    auto [cey, gey] = both({eval}, ey);
    auto [cs, gs] = both({kStatCount}, zero);
    cpu_->count_correct(cel, cey, cs);
    gpu_->count_correct(gel, gey, gs);
    expect_equal_values(host<double>(*cpu_, cs), host<double>(*gpu_, gs), "count_correct 1000x200");
  }
}

// --- data at 64x64x3 ---

TEST_F(GpuRealisticSizes, GatherBatch64x64x3AndTinyImageNetPermutation) {
  // 2000 images of 64x64x3 (24.6 MB of uint8), a batch of 128 from deep in a shuffled order.
  const int64_t count = 2000, width = int64_t(kSide) * kSide * 3;
  std::vector<uint8_t> pixels(size_t(count * width));
  {
    const std::vector<int32_t> raw = random_ints(count * width, 91, 0, 256);
    for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = uint8_t(raw[i]);
  }
  const std::vector<int32_t> labels = random_ints(count, 92, 0, 200);
  std::vector<int32_t> order(static_cast<size_t>(count));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937 gen(93);
  std::shuffle(order.begin(), order.end(), gen);
  auto [ci, gi] = both({count, kSide, kSide, 3}, pixels);
  auto [cl, gl] = both({count}, labels);
  auto [co, go] = both({count}, order);
  for (const int64_t first : {int64_t(0), int64_t(1872)}) {  // 1872 = count - 128: the last rows
    const std::string what = "gather_batch 128x64x64x3 first " + std::to_string(first);
    auto [cx, gx] = outputs({kBatch, kSide, kSide, 3});
    auto [cy, gy] = outputs({kBatch}, DType::I32);
    cpu_->gather_batch(ci, cl, co, first, cx, cy);
    gpu_->gather_batch(gi, gl, go, first, gx, gy);
    // pixel * (1/255) in float on both: the same single rounding (1e-7 for a last ulp).
    expect_close(cx, gx, 1e-7, 1e-7, what + " x");
    expect_equal_values(host<int32_t>(*cpu_, cy), host<int32_t>(*gpu_, gy), what + " y");
  }
  // Tiny ImageNet's epoch order: 100,000 training images (90,000 after a 10% holdout).
  for (const int64_t n : {int64_t(100000), int64_t(90000)}) {
    auto [cp, gp] = outputs({n}, DType::I32);
    cpu_->seeded_permutation(cp, 7, RngStream::kShuffle, 3);
    gpu_->seeded_permutation(gp, 7, RngStream::kShuffle, 3);
    expect_equal_values(host<int32_t>(*cpu_, cp), host<int32_t>(*gpu_, gp),
                        "seeded_permutation " + std::to_string(n));
  }
}

}  // namespace
}  // namespace bp::test
