// Locally connected layers (our implicit-GEMM kernels) against the CPU's per-position GEMMs:
// forward, backward data and the in-place update, weights [positions, out_c, kh*kw*in_c].
// The geometries cross every tile edge of the kernels (32 samples, 32 out channels, 32 input
// channels, 16-deep reductions), in_c 1 and 3, and both paddings.
#include "conv_cases.h"
#include "gpu_parity.h"

namespace bp::test {
namespace {

class GpuLocal2d : public GpuParity, public ::testing::WithParamInterface<ConvCase> {
 protected:
  void SetUp() override {
    GpuParity::SetUp();
    if (IsSkipped()) return;
    c_ = GetParam();
    g_ = c_.geometry();
    xs_ = {c_.batch, c_.in_h, c_.in_w, c_.in_c};
    ys_ = {c_.batch, g_.out_h, g_.out_w, g_.out_c};
    ws_ = {g_.positions(), g_.out_c, g_.patch_size()};
  }

  ConvCase c_{};
  Conv2dGeometry g_;
  Shape xs_, ys_, ws_;
};

// 1e-4 relative, floored at the CPU output's rms, as for conv2d: each output is a float32 sum
// of K (forward), covering-filters x out_c (backward data) or batch (update) products, which
// the GPU tiles and the CPU's BLAS add in different orders (~sqrt(terms) ulps of the terms).
constexpr double kLocalTol = 1e-4;

TEST_P(GpuLocal2d, Forward) {
  auto [cx, gx] = random_pair(xs_, 1);
  auto [cw, gw] = random_pair(ws_, 2);
  auto [cy, gy] = outputs(ys_);
  cpu_->local2d_forward(cx, cw, cy, g_);
  gpu_->local2d_forward(gx, gw, gy, g_);
  expect_close(cy, gy, kLocalTol, cpu_rms(cy), std::string("local2d_forward ") + c_.name);

  // A partial last batch through views of the same buffers.
  if (c_.batch > 1) {
    Conv2dGeometry part = g_;
    part.batch = c_.batch - 2 > 0 ? c_.batch - 2 : 1;
    Tensor cxp = cx.rows(part.batch), gxp = gx.rows(part.batch);
    Tensor cyp = cy.rows(part.batch), gyp = gy.rows(part.batch);
    poison(gyp);
    cpu_->local2d_forward(cxp, cw, cyp, part);
    gpu_->local2d_forward(gxp, gw, gyp, part);
    expect_close(cyp, gyp, kLocalTol, cpu_rms(cyp), std::string("partial batch ") + c_.name);
  }
}

TEST_P(GpuLocal2d, BackwardData) {
  auto [cdy, gdy] = random_pair(ys_, 3);
  auto [cw, gw] = random_pair(ws_, 4);
  auto [cdx, gdx] = outputs(xs_);
  cpu_->local2d_backward_data(cdy, cw, cdx, g_);
  gpu_->local2d_backward_data(gdy, gw, gdx, g_);
  // dx is overwritten everywhere: pixels no window reads must be exactly 0 (the floor is the
  // rms, so the NaN poison or any stale value there fails).
  expect_close(cdx, gdx, kLocalTol, cpu_rms(cdx), std::string("local2d_backward_data ") + c_.name);
}

TEST_P(GpuLocal2d, UpdateWritesIntoTheWeights) {
  auto [cx, gx] = random_pair(xs_, 5);
  auto [cdy, gdy] = random_pair(ys_, 6);
  {
    auto [cw, gw] = random_pair(ws_, 7);  // the same random w on both
    cpu_->local2d_update(cw, cdy, cx, g_, 0.999, 0.01);
    gpu_->local2d_update(gw, gdy, gx, g_, 0.999, 0.01);
    expect_close(cw, gw, kLocalTol, cpu_rms(cw), std::string("local2d_update ") + c_.name);
  }
  {
    // Step 1: the weight gradient dominates, so it is what the 1e-4 checks.
    auto [cw, gw] = random_pair(ws_, 8);
    cpu_->local2d_update(cw, cdy, cx, g_, 0.5, 1.0);
    gpu_->local2d_update(gw, gdy, gx, g_, 0.5, 1.0);
    expect_close(cw, gw, kLocalTol, cpu_rms(cw), std::string("local2d_update (step 1) ") + c_.name);
  }
}

TEST_P(GpuLocal2d, Deterministic) {
  // No atomics: the same inputs give bit-identical outputs (graph replay and reproducible runs
  // rely on it).
  const Tensor gx = gpu_random(xs_, 9), gw = gpu_random(ws_, 10), gdy = gpu_random(ys_, 11);
  Tensor y1 = gpu_->empty(ys_, DType::F32), y2 = gpu_->empty(ys_, DType::F32);
  gpu_->local2d_forward(gx, gw, y1, g_);
  gpu_->local2d_forward(gx, gw, y2, g_);
  expect_equal_values(host<float>(*gpu_, y1), host<float>(*gpu_, y2), "repeated forward");
  Tensor dx1 = gpu_->empty(xs_, DType::F32), dx2 = gpu_->empty(xs_, DType::F32);
  gpu_->local2d_backward_data(gdy, gw, dx1, g_);
  gpu_->local2d_backward_data(gdy, gw, dx2, g_);
  expect_equal_values(host<float>(*gpu_, dx1), host<float>(*gpu_, dx2), "repeated backward data");
  Tensor w1 = gpu_random(ws_, 12), w2 = gpu_random(ws_, 12);
  gpu_->local2d_update(w1, gdy, gx, g_, 0.999, 0.01);
  gpu_->local2d_update(w2, gdy, gx, g_, 0.999, 0.01);
  expect_equal_values(host<float>(*gpu_, w1), host<float>(*gpu_, w2), "repeated update");
}

// name, in h w c, filters, kernel h w, stride h w, same, batch
const ConvCase kLocalCases[] = {
    {"odd7x9c1_k3s1_valid_o5_b5", 7, 9, 1, 5, 3, 3, 1, 1, false, 5},
    {"odd7x9c3_k3s2_same_o6_b33", 7, 9, 3, 6, 3, 3, 2, 2, true, 33},
    {"even8x8c3_k3s2_same_asym_o7_b5", 8, 8, 3, 7, 3, 3, 2, 2, true, 5},
    {"odd9x7c3_k5s2_valid_o37_b33", 9, 7, 3, 37, 5, 5, 2, 2, false, 33},
    {"even8x10c1_k3s2_valid_unread_edge_o4_b5", 8, 10, 1, 4, 3, 3, 2, 2, false, 5},
    {"odd7x10c3_k3x5_s1x2_same_asym_o9_b5", 7, 10, 3, 9, 3, 5, 1, 2, true, 5},
    {"c40_6x6_k3s1_same_o3_b5", 6, 6, 40, 3, 3, 3, 1, 1, true, 5},
    {"odd5x5c3_k5s1_same_o2_b1", 5, 5, 3, 2, 5, 5, 1, 1, true, 1},
    {"loccon_layer2_26x26c32_k3s2_valid_o32_b33", 26, 26, 32, 32, 3, 3, 2, 2, false, 33},
};

INSTANTIATE_TEST_SUITE_P(Geometries, GpuLocal2d, ::testing::ValuesIn(kLocalCases), ConvCaseName());

}  // namespace
}  // namespace bp::test
