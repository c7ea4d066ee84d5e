// The two patch-based layers against the CPU: shared-weight convolutions (cuDNN) and locally
// connected layers (our implicit-GEMM kernels), each through forward, backward data and the
// in-place update, on geometries that exercise TF's 'same' padding (symmetric, and the
// asymmetric bottom/right case cuDNN can only do on a zero-extended copy of the input),
// 'valid' (with inputs whose last rows no window reads), and every tile edge of the local
// kernels (32 samples, 32 out channels, 32 input channels, 16-deep reductions).
// Without cuDNN in the build, conv2d must refuse on the GPU, saying so.
#include "conv_cases.h"
#include "gpu_parity.h"
#include "test_helpers.h"

namespace bp::test {
namespace {

// One layer family: its weight shape and its three Backend ops.
struct PatchOps {
  const char* name;
  bool needs_cudnn;
  Shape (*weight_shape)(const Conv2dGeometry&);
  void (Backend::*forward)(const Tensor&, const Tensor&, Tensor&, const Conv2dGeometry&);
  void (Backend::*backward_data)(const Tensor&, const Tensor&, Tensor&, const Conv2dGeometry&);
  void (Backend::*update)(Tensor&, const Tensor&, const Tensor&, const Conv2dGeometry&, double, double);
};

const PatchOps kConv2d{"conv2d", true,
                       [](const Conv2dGeometry& g) { return Shape{g.out_c, g.kernel_h, g.kernel_w, g.in_c}; },
                       &Backend::conv2d_forward, &Backend::conv2d_backward_data, &Backend::conv2d_update};
const PatchOps kLocal2d{"local2d", false,
                        [](const Conv2dGeometry& g) { return Shape{g.positions(), g.out_c, g.patch_size()}; },
                        &Backend::local2d_forward, &Backend::local2d_backward_data, &Backend::local2d_update};

struct PatchCase {
  const PatchOps* ops;
  ConvCase c;
};

std::ostream& operator<<(std::ostream& out, const PatchCase& p) { return out << p.ops->name << "_" << p.c.name; }

class GpuPatchOps : public GpuParity, public ::testing::WithParamInterface<PatchCase> {
 protected:
  void SetUp() override {
    GpuParity::SetUp();
    if (IsSkipped()) return;
    ops_ = GetParam().ops;
    c_ = GetParam().c;
#ifndef BRAINPROP_HAVE_CUDNN
    if (ops_->needs_cudnn) BP_GPU_SKIP("this build has no cuDNN (ConvWithoutCudnnSaysSo checks the error)");
#endif
    g_ = c_.geometry();
    xs_ = {c_.batch, c_.in_h, c_.in_w, c_.in_c};
    ys_ = {c_.batch, g_.out_h, g_.out_w, g_.out_c};
    ws_ = ops_->weight_shape(g_);
  }
  std::string what(const char* op) const { return std::string(ops_->name) + " " + op + " " + c_.name; }

  const PatchOps* ops_ = nullptr;
  ConvCase c_{};
  Conv2dGeometry g_;
  Shape xs_, ys_, ws_;
};

// Tolerance for all three ops: 1e-4 relative, floored at the CPU output's rms. Every output is
// a float32 sum of many products (K = kh*kw*in_c for forward, covering filters x out_c for
// backward data, batch x positions for a shared weight) that cuDNN, our tiles and the CPU's
// BLAS add in different orders: ~sqrt(terms) ulps of the terms' size, < 1e-5 of the rms here.
// Outputs near zero are cancellations, held to the rms rather than their own size. A misplaced
// window, a padding row on the wrong side or a dropped term is O(rms) off.
constexpr double kPatchTol = 1e-4;

TEST_P(GpuPatchOps, Forward) {
  auto [cx, gx] = random_pair(xs_, 1);
  auto [cw, gw] = random_pair(ws_, 2);
  auto [cy, gy] = outputs(ys_);
  (cpu_.get()->*ops_->forward)(cx, cw, cy, g_);
  (gpu_.get()->*ops_->forward)(gx, gw, gy, g_);
  expect_close(cy, gy, kPatchTol, cpu_rms(cy), what("forward"));

  // A partial last batch through views of the same buffers (for cuDNN a new plan).
  if (c_.batch > 1) {
    Conv2dGeometry part = g_;
    part.batch = c_.batch - 1;
    Tensor cxp = cx.rows(part.batch), gxp = gx.rows(part.batch);
    Tensor cyp = cy.rows(part.batch), gyp = gy.rows(part.batch);
    poison(gyp);
    (cpu_.get()->*ops_->forward)(cxp, cw, cyp, part);
    (gpu_.get()->*ops_->forward)(gxp, gw, gyp, part);
    expect_close(cyp, gyp, kPatchTol, cpu_rms(cyp), what("forward, partial batch"));
  }
}

TEST_P(GpuPatchOps, BackwardData) {
  auto [cdy, gdy] = random_pair(ys_, 3);
  auto [cw, gw] = random_pair(ws_, 4);
  auto [cdx, gdx] = outputs(xs_);
  (cpu_.get()->*ops_->backward_data)(cdy, cw, cdx, g_);
  (gpu_.get()->*ops_->backward_data)(gdy, gw, gdx, g_);
  // dx is overwritten everywhere: pixels no window reads must come back exactly 0 (the floor
  // is the rms, so the NaN poison or a stale value there fails).
  expect_close(cdx, gdx, kPatchTol, cpu_rms(cdx), what("backward data"));
}

TEST_P(GpuPatchOps, UpdateWritesIntoTheWeights) {
  auto [cx, gx] = random_pair(xs_, 5);
  auto [cdy, gdy] = random_pair(ys_, 6);
  // The trainer's form (w = 0.999 w - 0.01 dL/dw), then a large step so that the weight
  // gradient dominates the result and is what the 1e-4 checks; the same random w on both.
  const double settings[2][2] = {{0.999, 0.01}, {0.5, 1.0}};
  uint32_t seed = 7;
  for (const auto& [decay, step] : settings) {
    auto [cw, gw] = random_pair(ws_, seed++);
    (cpu_.get()->*ops_->update)(cw, cdy, cx, g_, decay, step);
    (gpu_.get()->*ops_->update)(gw, gdy, gx, g_, decay, step);
    expect_close(cw, gw, kPatchTol, cpu_rms(cw), what(step == 1.0 ? "update (step 1)" : "update"));
  }
}

TEST_P(GpuPatchOps, RepeatedCallsGiveTheSameResult) {
  // No atomics and deterministic algorithms (and, for cuDNN, the cached plan and padded copy
  // reused): repeated calls are bit-identical, which graph replay and reproducible runs rely on.
  const Tensor x = gpu_random(xs_, 9), w = gpu_random(ws_, 10), dy = gpu_random(ys_, 11);
  Tensor y1 = gpu_->empty(ys_, DType::F32), y2 = gpu_->empty(ys_, DType::F32);
  poison(y1);
  poison(y2);
  (gpu_.get()->*ops_->forward)(x, w, y1, g_);
  (gpu_.get()->*ops_->forward)(x, w, y2, g_);
  expect_equal_values(host<float>(*gpu_, y1), host<float>(*gpu_, y2), what("repeated forward"));
  Tensor dx1 = gpu_->empty(xs_, DType::F32), dx2 = gpu_->empty(xs_, DType::F32);
  poison(dx1);
  poison(dx2);
  (gpu_.get()->*ops_->backward_data)(dy, w, dx1, g_);
  (gpu_.get()->*ops_->backward_data)(dy, w, dx2, g_);
  expect_equal_values(host<float>(*gpu_, dx1), host<float>(*gpu_, dx2), what("repeated backward data"));
  Tensor w1 = gpu_random(ws_, 12), w2 = gpu_random(ws_, 12);
  (gpu_.get()->*ops_->update)(w1, dy, x, g_, 0.999, 0.01);
  (gpu_.get()->*ops_->update)(w2, dy, x, g_, 0.999, 0.01);
  expect_equal_values(host<float>(*gpu_, w1), host<float>(*gpu_, w2), what("repeated update"));
}

// name, in h w c, filters, kernel h w, stride h w, same, batch
const PatchCase kCases[] = {
    {&kConv2d, {"odd7x9c3_k3s1_same", 7, 9, 3, 5, 3, 3, 1, 1, true, 3}},
    {&kConv2d, {"odd7x9c3_k3s2_same", 7, 9, 3, 6, 3, 3, 2, 2, true, 3}},
    {&kConv2d, {"even8x8c3_k3s2_same_asym", 8, 8, 3, 4, 3, 3, 2, 2, true, 3}},
    {&kConv2d, {"odd7x9c3_k5s2_same", 7, 9, 3, 6, 5, 5, 2, 2, true, 3}},
    {&kConv2d, {"even8x8c2_k5s2_same_asym", 8, 8, 2, 5, 5, 5, 2, 2, true, 3}},
    {&kConv2d, {"odd7x9c3_k4s1_same_asym", 7, 9, 3, 5, 4, 4, 1, 1, true, 3}},
    {&kConv2d, {"odd7x10c3_k3x5_s1x2_same_asym", 7, 10, 3, 5, 3, 5, 1, 2, true, 3}},
    {&kConv2d, {"odd7x9c3_k5s1_valid", 7, 9, 3, 4, 5, 5, 1, 1, false, 3}},
    {&kConv2d, {"odd9x7c3_k3s2_valid", 9, 7, 3, 5, 3, 3, 2, 2, false, 3}},
    {&kConv2d, {"even8x10c3_k3s2_valid_unread_edge", 8, 10, 3, 4, 3, 3, 2, 2, false, 3}},
    {&kConv2d, {"wide12x12c16_k3s1_same_b8", 12, 12, 16, 24, 3, 3, 1, 1, true, 8}},
    {&kConv2d, {"convnet_layer1_28x28c1_k3s1_same", 28, 28, 1, 32, 3, 3, 1, 1, true, 3}},
    {&kConv2d, {"convnet_layer2_28x28c32_k3s2_same_asym", 28, 28, 32, 32, 3, 3, 2, 2, true, 3}},
    {&kLocal2d, {"odd7x9c1_k3s1_valid_o5_b5", 7, 9, 1, 5, 3, 3, 1, 1, false, 5}},
    {&kLocal2d, {"odd7x9c3_k3s2_same_o6_b33", 7, 9, 3, 6, 3, 3, 2, 2, true, 33}},
    {&kLocal2d, {"even8x8c3_k3s2_same_asym_o7_b5", 8, 8, 3, 7, 3, 3, 2, 2, true, 5}},
    {&kLocal2d, {"odd9x7c3_k5s2_valid_o37_b33", 9, 7, 3, 37, 5, 5, 2, 2, false, 33}},
    {&kLocal2d, {"even8x10c1_k3s2_valid_unread_edge_o4_b5", 8, 10, 1, 4, 3, 3, 2, 2, false, 5}},
    {&kLocal2d, {"odd7x10c3_k3x5_s1x2_same_asym_o9_b5", 7, 10, 3, 9, 3, 5, 1, 2, true, 5}},
    {&kLocal2d, {"c40_6x6_k3s1_same_o3_b5", 6, 6, 40, 3, 3, 3, 1, 1, true, 5}},
    {&kLocal2d, {"odd5x5c3_k5s1_same_o2_b1", 5, 5, 3, 2, 5, 5, 1, 1, true, 1}},
    {&kLocal2d, {"loccon_layer2_26x26c32_k3s2_valid_o32_b33", 26, 26, 32, 32, 3, 3, 2, 2, false, 33}},
};

INSTANTIATE_TEST_SUITE_P(Geometries, GpuPatchOps, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<PatchCase>& param_info) {
                           return std::string(param_info.param.ops->name) + "_" + param_info.param.c.name;
                         });

#ifndef BRAINPROP_HAVE_CUDNN
TEST_F(GpuParity, ConvWithoutCudnnSaysSo) {
  const ConvCase c = kCases[0].c;
  const Conv2dGeometry g = c.geometry();
  Tensor x = gpu_->empty({c.batch, c.in_h, c.in_w, c.in_c}, DType::F32);
  Tensor w = gpu_->empty(kConv2d.weight_shape(g), DType::F32);
  Tensor y = gpu_->empty({c.batch, g.out_h, g.out_w, g.out_c}, DType::F32);
  expect_error([&] { gpu_->conv2d_forward(x, w, y, g); }, "cuDNN");
}
#endif

}  // namespace
}  // namespace bp::test
