// Batch normalisation (training forward with the saved statistics and moving averages,
// evaluation forward, backward with and without dx and the gamma/beta update), max pooling
// with overlapping windows and tied maxima, and dropout masks, on the GPU against the CPU.
#include <string>

#include "gpu_parity.h"

namespace bp::test {
namespace {

// Element-wise results built from per-channel statistics that both backends sum in float64
// (different orders, ~1e-16 apart) and round to float: the same floats, up to a last-ulp
// difference where a float64 sum lands on a rounding boundary, plus the GPU's fused
// multiply-adds in gamma * (x - mean) * inv_std + beta and in the input gradient. 1e-5
// relative with a 0.1 floor (1e-6 absolute near zero) covers that; all values here are O(1).
constexpr double kBnTol = 1e-5, kBnFloor = 0.1;

struct BnCase {
  const char* name;
  Shape shape;  // channels last
};

class GpuBatchNorm : public GpuParity {
 protected:
  void check(const BnCase& bn) {
    const std::string name = bn.name;
    const int64_t channels = bn.shape.back();
    const uint32_t seed = uint32_t(shape_elements(bn.shape));
    // x with a non-zero mean and unit-ish spread; gamma around 1, beta around 0.
    auto [cx, gx] = random_pair(bn.shape, seed, 1.f, 5.f);
    auto [cg, gg] = random_pair({channels}, seed + 1, 0.5f, 1.5f);
    auto [cb, gb] = random_pair({channels}, seed + 2, -0.5f, 0.5f);
    auto [crm, grm] = random_pair({channels}, seed + 3, -1.f, 1.f);
    auto [crv, grv] = random_pair({channels}, seed + 4, 0.5f, 2.f);
    auto [cy, gy] = outputs(bn.shape);
    auto [cm, gm] = outputs({channels});
    auto [ci, gi] = outputs({channels});
    const double momentum = 0.99, epsilon = 1e-3;
    cpu_->batchnorm_forward_train(cx, cg, cb, cy, cm, ci, crm, crv, momentum, epsilon);
    gpu_->batchnorm_forward_train(gx, gg, gb, gy, gm, gi, grm, grv, momentum, epsilon);
    expect_close(cy, gy, kBnTol, kBnFloor, name + " train y");
    expect_close(cm, gm, kBnTol, kBnFloor, name + " saved_mean");
    expect_close(ci, gi, kBnTol, kBnFloor, name + " saved_inv_std");
    expect_close(crm, grm, kBnTol, kBnFloor, name + " running_mean");
    expect_close(crv, grv, kBnTol, kBnFloor, name + " running_var");

    // Evaluation with the moved averages.
    auto [cye, gye] = outputs(bn.shape);
    cpu_->batchnorm_forward_eval(cx, cg, cb, crm, crv, epsilon, cye);
    gpu_->batchnorm_forward_eval(gx, gg, gb, grm, grv, epsilon, gye);
    expect_close(cye, gye, kBnTol, kBnFloor, name + " eval y");

    // Backward from the saved statistics, with dx: dx from the old gamma, then gamma and beta
    // move (decay 0.999, step 0.01).
    auto [cdy, gdy] = random_pair(bn.shape, seed + 5);
    {
      auto [cg2, gg2] = random_pair({channels}, seed + 1, 0.5f, 1.5f);
      auto [cb2, gb2] = random_pair({channels}, seed + 2, -0.5f, 0.5f);
      auto [cdx, gdx] = outputs(bn.shape);
      cpu_->batchnorm_backward(cdy, cx, cm, ci, cg2, cb2, &cdx, 0.999, 0.01);
      gpu_->batchnorm_backward(gdy, gx, gm, gi, gg2, gb2, &gdx, 0.999, 0.01);
      expect_close(cdx, gdx, kBnTol, kBnFloor, name + " dx");
      expect_close(cg2, gg2, kBnTol, kBnFloor, name + " gamma after update");
      expect_close(cb2, gb2, kBnTol, kBnFloor, name + " beta after update");
    }
    {
      // Without dx (the first layer of a net): only gamma and beta, the same values.
      auto [cg3, gg3] = random_pair({channels}, seed + 1, 0.5f, 1.5f);
      auto [cb3, gb3] = random_pair({channels}, seed + 2, -0.5f, 0.5f);
      cpu_->batchnorm_backward(cdy, cx, cm, ci, cg3, cb3, nullptr, 0.999, 0.01);
      gpu_->batchnorm_backward(gdy, gx, gm, gi, gg3, gb3, nullptr, 0.999, 0.01);
      expect_close(cg3, gg3, kBnTol, kBnFloor, name + " gamma after update (no dx)");
      expect_close(cb3, gb3, kBnTol, kBnFloor, name + " beta after update (no dx)");
    }
  }
};

TEST_F(GpuBatchNorm, ConvActivations2x5x5x7) { check({"2x5x5x7", {2, 5, 5, 7}}); }

TEST_F(GpuBatchNorm, ManyRows600x3) {
  // 600 rows: three 256-row chunks of the GPU's column sums, the last one partial.
  check({"600x3", {600, 3}});
}

TEST_F(GpuBatchNorm, WideChannels3x10x10x40) {
  // 40 channels: two 32-column tiles, the second partial; 300 rows: two chunks.
  check({"3x10x10x40", {3, 10, 10, 40}});
}

// --- max pooling ---

struct PoolCase {
  const char* name;
  int batch, in_h, in_w, channels, pool, stride;
  Pool2dGeometry geometry() const {
    Pool2dGeometry g = make_pool_geometry(in_h, in_w, channels, pool, stride);
    g.batch = batch;
    return g;
  }
};

TEST_F(GpuParity, MaxPoolWithTiesAndOverlappingWindows) {
  const PoolCase cases[] = {
      {"7x9 pool 2 stride 2", 2, 7, 9, 3, 2, 2},  // the last row is in no window
      {"7x9 pool 3 stride 2", 2, 7, 9, 3, 3, 2},  // overlapping windows
      {"8x8 pool 2 stride 2", 3, 8, 8, 5, 2, 2},
      {"7x9 pool 3 stride 1", 2, 7, 9, 3, 3, 1},  // heavy overlap
  };
  uint32_t seed = 1;
  for (const PoolCase& pc : cases) {
    const Pool2dGeometry g = pc.geometry();
    const Shape xs{pc.batch, pc.in_h, pc.in_w, pc.channels};
    const Shape ys{pc.batch, g.out_h, g.out_w, g.channels};
    // Three levels only: most windows have tied maxima, where the first (in row-major window
    // order) is the maximum that gets the gradient.
    std::vector<float> x = random_floats(shape_elements(xs), seed++, 0.f, 3.f);
    for (float& v : x) v = std::floor(v) - 1.f;
    auto [cx, gx] = both(xs, x);
    auto [cy, gy] = outputs(ys);
    cpu_->maxpool2d_forward(cx, cy, g);
    gpu_->maxpool2d_forward(gx, gy, g);
    expect_close(cy, gy, 0.0, 1.0, std::string(pc.name) + " forward");  // a selection: exact

    auto [cdy, gdy] = random_pair(ys, seed++);
    auto [cdx, gdx] = outputs(xs);
    cpu_->maxpool2d_backward(cdy, cx, cdx, g);
    gpu_->maxpool2d_backward(gdy, gx, gdx, g);
    // Each input adds the dy of the windows whose first maximum it is, in window order from
    // 0 on both: the same float additions, exact in practice. 1e-6 relative with a floor of 1
    // (the dy scale) allows a few ulps should the order of up to 9 additions ever differ (their
    // sum can cancel to far below the terms). A tie given to the wrong element, or a gradient
    // left in an input that is no window's first maximum, is off by a whole dy, O(0.1-1).
    expect_close(cdx, gdx, 1e-6, 1.0, std::string(pc.name) + " backward");
  }
}

// --- dropout ---

TEST_F(GpuParity, DropoutSameMaskAsTheCpu) {
  const uint64_t seed = 99, step = (uint64_t(1) << 32) + 3;  // the step's high word counts
  const uint32_t layer = 2;
  for (const int64_t n : {int64_t(3), int64_t(1001), int64_t(4099)})
    for (const float rate : {0.5f, 0.1f}) {
      const std::string what = "dropout n " + std::to_string(n) + " rate " + std::to_string(rate);
      auto [cx, gx] = random_pair({n}, uint32_t(n), 0.5f, 1.5f);  // no zeros in x
      auto [cy, gy] = outputs({n});
      cpu_->dropout_apply(cx, cy, rate, seed, step, layer);
      gpu_->dropout_apply(gx, gy, rate, seed, step, layer);
      // x * 0 or x * (1 / (1 - rate)), the same float product on both: within 1e-6.
      expect_close(cy, gy, 1e-6, 1e-6, what);
      // The dropped fraction is about `rate` (5 standard deviations).
      const std::vector<float> y = host<float>(*gpu_, gy);
      int64_t dropped = 0;
      for (float v : y) dropped += v == 0.f ? 1 : 0;
      const double sd = std::sqrt(double(n) * rate * (1 - rate));
      EXPECT_NEAR(double(dropped), double(n) * rate, 5 * sd + 1) << what;

      // In place (the backward applies the mask to the feedback buffer itself).
      cpu_->dropout_apply(cx, cx, rate, seed, step, layer);
      gpu_->dropout_apply(gx, gx, rate, seed, step, layer);
      expect_close(cx, gx, 1e-6, 1e-6, what + " in place");
      expect_close_values(host<float>(*gpu_, gy), host<float>(*gpu_, gx), 1e-6, 1e-6,
                          what + " in place equals out of place");
    }
  // Another step and another layer draw other masks.
  const int64_t n = 1001;
  Tensor x = gpu_random({n}, 5), a = gpu_->empty({n}, DType::F32), b = gpu_->empty({n}, DType::F32),
         c = gpu_->empty({n}, DType::F32);
  gpu_->dropout_apply(x, a, 0.5f, seed, step, layer);
  gpu_->dropout_apply(x, b, 0.5f, seed, step + 1, layer);
  gpu_->dropout_apply(x, c, 0.5f, seed, step, layer + 1);
  EXPECT_NE(host<float>(*gpu_, a), host<float>(*gpu_, b)) << "the mask must depend on the step";
  EXPECT_NE(host<float>(*gpu_, a), host<float>(*gpu_, c)) << "the mask must depend on the layer";
}

}  // namespace
}  // namespace bp::test
