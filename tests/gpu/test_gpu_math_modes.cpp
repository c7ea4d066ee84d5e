// The math modes of the GPU's GEMMs and convolutions, against float64 references:
// --math fp32 must be free of TF32 (its inputs carry mantissa bits that TF32's 10-bit mantissa
// rounds away, every one in the same direction, so a TF32 kernel would be off by ~3.7e-4),
// and --math tf32 must stay within what a 10-bit mantissa allows (each input rounded by at
// most 2^-11 relative, so each product by at most ~2^-10, plus float accumulation).
#include <cmath>
#include <cstdio>
#include <random>

#include "gpu_parity.h"

namespace bp::test {
namespace {

// 1 + 2^-11 + 2^-13 times a power of two: rounds up to 1 + 2^-10 in TF32 (relative +3.7e-4).
std::vector<float> tf32_sensitive(int64_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> exponent(-2, 2);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = std::ldexp(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -13), exponent(gen));
  return v;
}

constexpr double kFp32Bound = 4e-6;  // 64-term float sums of positive terms: <= 64 * 2^-24
const double kTf32Bound = std::ldexp(1.0, -10) + kFp32Bound;
constexpr double kTf32Shift = 3.6e-4;  // what TF32 rounding of the sensitive inputs costs

// Worst relative error of got against the float64 reference (all references are positive).
double worst_relative(const std::vector<float>& got, const std::vector<double>& ref) {
  double worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double e = std::abs(double(got[i]) - ref[i]) / std::abs(ref[i]);
    worst = std::isnan(e) ? INFINITY : std::max(worst, e);
  }
  return worst;
}

class GpuMathModes : public GpuParity {
 protected:
  std::vector<float> gemm_on(Backend& be, const std::vector<float>& a, const std::vector<float>& b,
                             int m, int n, int k) {
    Tensor ta = be.empty({m, k}, DType::F32), tb = be.empty({k, n}, DType::F32),
           tc = be.empty({m, n}, DType::F32);
    be.copy_from_host(ta, a.data());
    be.copy_from_host(tb, b.data());
    be.fill(tc, std::nan(""));
    be.gemm(false, false, 1.0, ta, tb, 0.0, tc);
    return host<float>(be, tc);
  }
};

TEST_F(GpuMathModes, GemmFp32HasNoTf32AndTf32StaysWithinItsMantissa) {
  const int m = 16, n = 24, k = 64;
  const std::vector<float> a = tf32_sensitive(int64_t(m) * k, 1);
  const std::vector<float> b = random_floats(int64_t(k) * n, 2, 1.f, 2.f);
  std::vector<double> ref(size_t(m) * n, 0.0);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j)
      for (int l = 0; l < k; ++l) ref[size_t(i) * n + j] += double(a[size_t(i) * k + l]) * b[size_t(l) * n + j];
  const double fp32 = worst_relative(gemm_on(*gpu_, a, b, m, n, k), ref);
  auto tf32_backend = make_cuda_backend(0, MathMode::TF32);
  const double tf32 = worst_relative(gemm_on(*tf32_backend, a, b, m, n, k), ref);
  std::printf("gemm: fp32 worst relative error %.3g, tf32 %.3g\n", fp32, tf32);
  EXPECT_LE(fp32, kFp32Bound) << "FP32 GEMM is off like TF32 rounding (" << kTf32Shift << ")";
  EXPECT_LE(tf32, kTf32Bound);
}

TEST_F(GpuMathModes, ConvolutionFp32HasNoTf32AndTf32StaysWithinItsMantissa) {
  // 'same' 3x3 over 4 channels: 36-term sums (fewer at the borders).
  const Conv2dGeometry g = [] {
    Conv2dGeometry c = make_conv_geometry(9, 7, 4, 8, 3, 3, 1, 1, true);
    c.batch = 2;
    return c;
  }();
  const std::vector<float> x = tf32_sensitive(int64_t(g.batch) * g.in_h * g.in_w * g.in_c, 3);
  const std::vector<float> w = random_floats(int64_t(g.out_c) * g.patch_size(), 4, 1.f, 2.f);
  std::vector<double> ref(size_t(g.batch) * g.positions() * g.out_c, 0.0);
  for (int bi = 0; bi < g.batch; ++bi)
    for (int p = 0; p < g.positions(); ++p)
      for (int o = 0; o < g.out_c; ++o) {
        double sum = 0;
        for (int kk = 0; kk < g.patch_size(); ++kk) {
          const long long src = patch_source(g, bi, p / g.out_w, p % g.out_w, kk);
          if (src >= 0) sum += double(x[size_t(src)]) * w[size_t(o) * g.patch_size() + kk];
        }
        ref[(size_t(bi) * g.positions() + p) * g.out_c + o] = sum;
      }
  auto run = [&](Backend& be) {
    Tensor tx = be.empty({g.batch, g.in_h, g.in_w, g.in_c}, DType::F32);
    Tensor tw = be.empty({g.out_c, g.kernel_h, g.kernel_w, g.in_c}, DType::F32);
    Tensor ty = be.empty({g.batch, g.out_h, g.out_w, g.out_c}, DType::F32);
    be.copy_from_host(tx, x.data());
    be.copy_from_host(tw, w.data());
    be.fill(ty, std::nan(""));
    be.conv2d_forward(tx, tw, ty, g);
    return host<float>(be, ty);
  };
  const double fp32 = worst_relative(run(*gpu_), ref);
  auto tf32_backend = make_cuda_backend(0, MathMode::TF32);
  const double tf32 = worst_relative(run(*tf32_backend), ref);
  std::printf("conv2d: fp32 worst relative error %.3g, tf32 %.3g\n", fp32, tf32);
  EXPECT_LE(fp32, kFp32Bound) << "FP32 convolution is off like TF32 rounding (" << kTf32Shift << ")";
  EXPECT_LE(tf32, kTf32Bound);
}

// cuDNN's v7 heuristics report CUDNN_DEFAULT_MATH for float results: in FP32 mode the plans
// must still come from them (run with FMA math forced), not only from the fixed fallbacks.
TEST_F(GpuMathModes, Fp32ConvolutionPlansUseTheHeuristicsPicks) {
  setenv("BRAINPROP_CUDNN_VERBOSE", "1", 1);
  const Conv2dGeometry g = [] {
    Conv2dGeometry c = make_conv_geometry(10, 10, 3, 6, 3, 3, 2, 2, true);
    c.batch = 3;
    return c;
  }();
  auto [cx, gx] = random_pair({g.batch, g.in_h, g.in_w, g.in_c}, 5);
  auto [cw, gw] = random_pair({g.out_c, g.kernel_h, g.kernel_w, g.in_c}, 6);
  Tensor gy = gpu_->empty({g.batch, g.out_h, g.out_w, g.out_c}, DType::F32);
  ::testing::internal::CaptureStderr();
  gpu_->conv2d_forward(gx, gw, gy, g);
  gpu_->synchronize();
  const std::string log = ::testing::internal::GetCapturedStderr();
  unsetenv("BRAINPROP_CUDNN_VERBOSE");
  for (const char* op : {"forward", "backward-data", "backward-filter"})
    EXPECT_NE(log.find(std::string("cuDNN ") + op), std::string::npos) << op << "\n" << log;
  EXPECT_EQ(log.find("fallback"), std::string::npos) << log;
  EXPECT_NE(log.find("heuristic result"), std::string::npos) << log;
}

}  // namespace
}  // namespace bp::test
