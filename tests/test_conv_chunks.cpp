// The CPU convolutions process a batch in chunks of samples (patch buffers stay under 16 MiB).
// Shapes large enough to need several chunks must give what one sample at a time gives:
// forward, backward-data, and the update that accumulates over chunks into the weights.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "core/backend.h"

namespace bp {
namespace {


struct ChunkCase {
  const char* name;
  bool local;
  Conv2dGeometry g;
  int batch;
};

Tensor random_tensor(Backend& be, const Shape& shape, std::mt19937_64& gen) {
  Tensor t = be.empty(shape, DType::F64);
  std::uniform_real_distribution<double> u(-1, 1);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<double>()[i] = u(gen);
  return t;
}

void expect_close(const Tensor& a, const std::vector<double>& b, const char* what) {
  ASSERT_EQ(a.numel(), int64_t(b.size()));
  for (int64_t i = 0; i < a.numel(); ++i)
    ASSERT_NEAR(a.data<double>()[i], b[size_t(i)], 1e-9 * (1 + std::abs(b[size_t(i)]))) << what << " [" << i << "]";
}

class ConvChunks : public ::testing::TestWithParam<ChunkCase> {};

TEST_P(ConvChunks, BatchOfSeveralChunksEqualsOneSampleAtATime) {
  const ChunkCase c = GetParam();
  auto be = make_cpu_backend(2);
  std::mt19937_64 gen(5);
  Conv2dGeometry g = c.g;
  g.batch = c.batch;
  const Shape wshape = c.local ? Shape{g.positions(), g.out_c, g.patch_size()}
                               : Shape{g.out_c, g.kernel_h, g.kernel_w, g.in_c};
  // A batch that needs more than one 4M-element chunk of patches.
  ASSERT_GT(int64_t(c.batch) * g.positions() * g.patch_size(), int64_t(4) << 20);
  Tensor x = random_tensor(*be, {c.batch, g.in_h, g.in_w, g.in_c}, gen);
  Tensor dy = random_tensor(*be, {c.batch, g.out_h, g.out_w, g.out_c}, gen);
  Tensor w = random_tensor(*be, wshape, gen);
  Tensor y = be->empty({c.batch, g.out_h, g.out_w, g.out_c}, DType::F64);
  Tensor dx = be->empty({c.batch, g.in_h, g.in_w, g.in_c}, DType::F64);
  Tensor grad = be->empty(wshape, DType::F64);
  be->fill(y, -7.0);  // poisoned: every element must be written
  be->fill(dx, -7.0);
  be->fill(grad, 0.0);
  auto forward = c.local ? &Backend::local2d_forward : &Backend::conv2d_forward;
  auto backward = c.local ? &Backend::local2d_backward_data : &Backend::conv2d_backward_data;
  auto update = c.local ? &Backend::local2d_update : &Backend::conv2d_update;
  (be.get()->*forward)(x, w, y, g);
  (be.get()->*backward)(dy, w, dx, g);
  (be.get()->*update)(grad, dy, x, g, 1.0, -1.0);  // from zero weights: grad = sum of gradients

  Conv2dGeometry one = g;
  one.batch = 1;
  std::vector<double> y_ref, dx_ref, grad_ref(size_t(grad.numel()), 0.0);
  Tensor g1 = be->empty(wshape, DType::F64);
  for (int b = 0; b < c.batch; ++b) {
    Tensor x1 = be->empty({1, g.in_h, g.in_w, g.in_c}, DType::F64), dy1 = be->empty({1, g.out_h, g.out_w, g.out_c}, DType::F64);
    be->copy_from_host(x1, x.data<double>() + int64_t(b) * x1.numel());
    be->copy_from_host(dy1, dy.data<double>() + int64_t(b) * dy1.numel());
    Tensor y1 = be->empty(dy1.shape(), DType::F64), dx1 = be->empty(x1.shape(), DType::F64);
    (be.get()->*forward)(x1, w, y1, one);
    (be.get()->*backward)(dy1, w, dx1, one);
    be->fill(g1, 0.0);
    (be.get()->*update)(g1, dy1, x1, one, 1.0, -1.0);
    y_ref.insert(y_ref.end(), y1.data<double>(), y1.data<double>() + y1.numel());
    dx_ref.insert(dx_ref.end(), dx1.data<double>(), dx1.data<double>() + dx1.numel());
    for (int64_t i = 0; i < g1.numel(); ++i) grad_ref[size_t(i)] += g1.data<double>()[i];
  }
  expect_close(y, y_ref, "forward");
  expect_close(dx, dx_ref, "backward-data");
  expect_close(grad, grad_ref, "update");
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ConvChunks,
    ::testing::Values(
        ChunkCase{"conv_deep_layer", false, make_conv_geometry(32, 32, 64, 8, 3, 3, 1, 1, true), 9},
        ChunkCase{"local_same_stride1", true, make_conv_geometry(32, 32, 16, 4, 3, 3, 1, 1, true), 30}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

}  // namespace
}  // namespace bp
