// Shared-weight convolutions (cuDNN) against the CPU's im2col + GEMM: forward, backward data
// and the in-place weight update, on geometries that exercise TF's 'same' padding (symmetric
// and the asymmetric case cuDNN can only do on a zero-extended copy of the input) and 'valid'.
// Without cuDNN in the build, conv2d must refuse on the GPU, saying so.
#include "conv_cases.h"
#include "gpu_parity.h"
#include "test_helpers.h"

namespace bp::test {
namespace {

class GpuConv : public GpuParity, public ::testing::WithParamInterface<ConvCase> {
 protected:
  void SetUp() override {
    GpuParity::SetUp();
    if (IsSkipped()) return;
#ifndef BRAINPROP_HAVE_CUDNN
    GTEST_SKIP() << "this build has no cuDNN (GpuConvWithoutCudnn checks the error instead)";
#endif
    c_ = GetParam();
    g_ = c_.geometry();
    xs_ = {c_.batch, c_.in_h, c_.in_w, c_.in_c};
    ys_ = {c_.batch, g_.out_h, g_.out_w, g_.out_c};
    ws_ = {g_.out_c, c_.kernel_h, c_.kernel_w, c_.in_c};
  }

  ConvCase c_{};
  Conv2dGeometry g_;
  Shape xs_, ys_, ws_;
};

// Tolerance for all three ops: 1e-4 relative, floored at the CPU output's rms. Every output is
// a sum of many float32 products (K = kh*kw*in_c for forward, out_c*kh*kw/stride^2 for backward
// data, batch*positions for the weight gradient) that cuDNN and the CPU's GEMMs add in
// different orders; that moves a result by ~sqrt(terms) ulps of the terms' size, < 1e-5 of the
// rms here. Outputs near zero are cancellations, so they are held to the rms, not to their own
// size. A misplaced window, a padding row on the wrong side or a dropped term is O(rms) off.
constexpr double kConvTol = 1e-4;

TEST_P(GpuConv, Forward) {
  auto [cx, gx] = random_pair(xs_, 1);
  auto [cw, gw] = random_pair(ws_, 2);
  auto [cy, gy] = outputs(ys_);
  cpu_->conv2d_forward(cx, cw, cy, g_);
  gpu_->conv2d_forward(gx, gw, gy, g_);
  expect_close(cy, gy, kConvTol, cpu_rms(cy), std::string("conv2d_forward ") + c_.name);

  // A partial last batch: the first rows of the same buffers (a new cuDNN plan for the batch).
  if (c_.batch > 1) {
    Conv2dGeometry part = g_;
    part.batch = c_.batch - 1;
    Tensor cxp = cx.rows(part.batch), gxp = gx.rows(part.batch);
    Tensor cyp = cy.rows(part.batch), gyp = gy.rows(part.batch);
    poison(gyp);
    cpu_->conv2d_forward(cxp, cw, cyp, part);
    gpu_->conv2d_forward(gxp, gw, gyp, part);
    expect_close(cyp, gyp, kConvTol, cpu_rms(cyp), std::string("partial batch ") + c_.name);
  }
}

TEST_P(GpuConv, BackwardData) {
  auto [cdy, gdy] = random_pair(ys_, 3);
  auto [cw, gw] = random_pair(ws_, 4);
  auto [cdx, gdx] = outputs(xs_);
  cpu_->conv2d_backward_data(cdy, cw, cdx, g_);
  gpu_->conv2d_backward_data(gdy, gw, gdx, g_);
  // Pixels no window reads ('valid' remainders) must come back exactly 0: the floor is the rms,
  // so a poisoned or stale value there fails too.
  expect_close(cdx, gdx, kConvTol, cpu_rms(cdx), std::string("conv2d_backward_data ") + c_.name);
}

TEST_P(GpuConv, UpdateWritesIntoTheWeights) {
  auto [cx, gx] = random_pair(xs_, 5);
  auto [cdy, gdy] = random_pair(ys_, 6);
  {
    // The trainer's form: w = 0.999 w - 0.01 dL/dw, from the same random w on both.
    auto [cw, gw] = random_pair(ws_, 7);
    cpu_->conv2d_update(cw, cdy, cx, g_, 0.999, 0.01);
    gpu_->conv2d_update(gw, gdy, gx, g_, 0.999, 0.01);
    expect_close(cw, gw, kConvTol, cpu_rms(cw), std::string("conv2d_update ") + c_.name);
  }
  {
    // A large step, so the weight gradient dominates the result and is checked to 1e-4.
    auto [cw, gw] = random_pair(ws_, 8);
    cpu_->conv2d_update(cw, cdy, cx, g_, 0.5, 1.0);
    gpu_->conv2d_update(gw, gdy, gx, g_, 0.5, 1.0);
    expect_close(cw, gw, kConvTol, cpu_rms(cw), std::string("conv2d_update (step 1) ") + c_.name);
  }
}

TEST_P(GpuConv, RepeatedCallsGiveTheSameResult) {
  // The cached plan (and the padded copy in the workspace) is reused: a second forward and
  // update give bit-identical results (the algorithms are deterministic, which graph replay
  // and run-to-run reproducibility rely on).
  const Tensor x = gpu_random(xs_, 9), w = gpu_random(ws_, 10), dy = gpu_random(ys_, 11);
  Tensor y1 = gpu_->empty(ys_, DType::F32), y2 = gpu_->empty(ys_, DType::F32);
  poison(y1);
  poison(y2);
  gpu_->conv2d_forward(x, w, y1, g_);
  gpu_->conv2d_forward(x, w, y2, g_);
  expect_equal_values(host<float>(*gpu_, y1), host<float>(*gpu_, y2),
                      std::string("repeated forward ") + c_.name);
  Tensor dx1 = gpu_->empty(xs_, DType::F32), dx2 = gpu_->empty(xs_, DType::F32);
  poison(dx1);
  poison(dx2);
  gpu_->conv2d_backward_data(dy, w, dx1, g_);
  gpu_->conv2d_backward_data(dy, w, dx2, g_);
  expect_equal_values(host<float>(*gpu_, dx1), host<float>(*gpu_, dx2),
                      std::string("repeated backward data ") + c_.name);
  Tensor w1 = gpu_random(ws_, 12), w2 = gpu_random(ws_, 12);
  gpu_->conv2d_update(w1, dy, x, g_, 0.999, 0.01);
  gpu_->conv2d_update(w2, dy, x, g_, 0.999, 0.01);
  expect_equal_values(host<float>(*gpu_, w1), host<float>(*gpu_, w2),
                      std::string("repeated update ") + c_.name);
}

// name, in h w c, filters, kernel h w, stride h w, same, batch
const ConvCase kConvCases[] = {
    {"odd7x9c3_k3s1_same", 7, 9, 3, 5, 3, 3, 1, 1, true, 3},
    {"odd7x9c3_k3s2_same", 7, 9, 3, 6, 3, 3, 2, 2, true, 3},
    {"even8x8c3_k3s2_same_asym", 8, 8, 3, 4, 3, 3, 2, 2, true, 3},
    {"odd7x9c3_k5s2_same", 7, 9, 3, 6, 5, 5, 2, 2, true, 3},
    {"even8x8c2_k5s2_same_asym", 8, 8, 2, 5, 5, 5, 2, 2, true, 3},
    {"odd7x9c3_k4s1_same_asym", 7, 9, 3, 5, 4, 4, 1, 1, true, 3},
    {"odd7x10c3_k3x5_s1x2_same_asym", 7, 10, 3, 5, 3, 5, 1, 2, true, 3},
    {"odd7x9c3_k5s1_valid", 7, 9, 3, 4, 5, 5, 1, 1, false, 3},
    {"odd9x7c3_k3s2_valid", 9, 7, 3, 5, 3, 3, 2, 2, false, 3},
    {"even8x10c3_k3s2_valid_unread_edge", 8, 10, 3, 4, 3, 3, 2, 2, false, 3},
    {"wide12x12c16_k3s1_same_b8", 12, 12, 16, 24, 3, 3, 1, 1, true, 8},
    {"convnet_layer1_28x28c1_k3s1_same", 28, 28, 1, 32, 3, 3, 1, 1, true, 3},
    {"convnet_layer2_28x28c32_k3s2_same_asym", 28, 28, 32, 32, 3, 3, 2, 2, true, 3},
};

INSTANTIATE_TEST_SUITE_P(Geometries, GpuConv, ::testing::ValuesIn(kConvCases), ConvCaseName());

#ifndef BRAINPROP_HAVE_CUDNN
TEST_F(GpuParity, ConvWithoutCudnnSaysSo) {
  const ConvCase c = kConvCases[0];
  const Conv2dGeometry g = c.geometry();
  Tensor x = gpu_->empty({c.batch, c.in_h, c.in_w, c.in_c}, DType::F32);
  Tensor w = gpu_->empty({g.out_c, c.kernel_h, c.kernel_w, c.in_c}, DType::F32);
  Tensor y = gpu_->empty({c.batch, g.out_h, g.out_w, g.out_c}, DType::F32);
  expect_error([&] { gpu_->conv2d_forward(x, w, y, g); }, "cuDNN");
}
#endif

}  // namespace
}  // namespace bp::test
