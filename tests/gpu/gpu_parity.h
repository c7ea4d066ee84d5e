// The GPU parity harness: a CPU and a CUDA backend side by side, random inputs made on the
// host and uploaded to both, GPU outputs poisoned (NaN) before each op so a kernel that skips
// an element fails, and a relative-error comparison with the tolerance stated at each use.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/backend.h"

namespace bp::test {

// Where every GPU test must run (BRAINPROP_GPU_TESTS_MUST_RUN=1: the emulated device in CI,
// bench/gpu_check.sh on a GPU), a test that would skip fails instead: a GPU run that silently
// tests less than it says must not pass.
inline bool gpu_tests_must_run() {
  const char* v = std::getenv("BRAINPROP_GPU_TESTS_MUST_RUN");
  return v && std::string(v) == "1";
}

#define BP_GPU_SKIP(why)                                                                 \
  do {                                                                                   \
    if (::bp::test::gpu_tests_must_run()) {                                              \
      FAIL() << "this test must run here (BRAINPROP_GPU_TESTS_MUST_RUN=1) but would skip: " \
             << why;                                                                     \
    }                                                                                    \
    GTEST_SKIP() << why;                                                                 \
  } while (0)

// Random floats in [lo, hi) from a fixed seed.
inline std::vector<float> random_floats(int64_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(gen);
  return v;
}

// Random ints in [lo, hi) from a fixed seed.
inline std::vector<int32_t> random_ints(int64_t n, uint32_t seed, int32_t lo, int32_t hi) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int32_t> dist(lo, hi - 1);
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (int32_t& x : v) x = dist(gen);
  return v;
}

class GpuParity : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!cuda_backend_available(&why)) BP_GPU_SKIP("no CUDA device: " << why);
    cpu_ = make_cpu_backend(1);
    gpu_ = make_cuda_backend(0, MathMode::FP32);
  }

  // The same host values as a tensor on each backend.
  template <typename T>
  std::pair<Tensor, Tensor> both(const Shape& shape, const std::vector<T>& host) {
    EXPECT_EQ(int64_t(host.size()), shape_elements(shape));
    Tensor c = cpu_->empty(shape, dtype_of<T>());
    Tensor g = gpu_->empty(shape, dtype_of<T>());
    cpu_->copy_from_host(c, host.data());
    gpu_->copy_from_host(g, host.data());
    return {c, g};
  }
  std::pair<Tensor, Tensor> random_pair(const Shape& shape, uint32_t seed, float lo = -1.f,
                                        float hi = 1.f) {
    return both(shape, random_floats(shape_elements(shape), seed, lo, hi));
  }

  // Random values on the GPU only (for GPU-against-GPU checks).
  Tensor gpu_random(const Shape& shape, uint32_t seed) {
    Tensor t = gpu_->empty(shape, DType::F32);
    const std::vector<float> v = random_floats(shape_elements(shape), seed);
    gpu_->copy_from_host(t, v.data());
    return t;
  }

  // An output on each backend; the GPU one filled with NaN so unwritten elements show.
  std::pair<Tensor, Tensor> outputs(const Shape& shape, DType dtype = DType::F32) {
    Tensor c = cpu_->empty(shape, dtype);
    Tensor g = gpu_->empty(shape, dtype);
    cpu_->fill(c, 0.0);
    poison(g);
    return {c, g};
  }
  void poison(Tensor& t) {
    gpu_->fill(t, t.dtype() == DType::F32 || t.dtype() == DType::F64
                      ? std::numeric_limits<double>::quiet_NaN()
                      : -7.0);
  }

  template <typename T>
  std::vector<T> host(Backend& be, const Tensor& t) {
    std::vector<T> v(static_cast<size_t>(t.numel()));
    be.copy_to_host(t, v.data());
    return v;
  }

  // Every element within rel_tol of the CPU value, relative to max(|cpu|, floor): the floor
  // keeps values near zero from demanding relative accuracy that float rounding cannot give.
  void expect_close(const Tensor& cpu, const Tensor& gpu, double rel_tol, double floor,
                    const std::string& what) {
    ASSERT_EQ(cpu.numel(), gpu.numel()) << what;
    expect_close_values(host<float>(*cpu_, cpu), host<float>(*gpu_, gpu), rel_tol, floor, what);
  }

  // The same comparison on host values (reference first), e.g. two GPU runs read back.
  static void expect_close_values(const std::vector<float>& a, const std::vector<float>& b,
                                  double rel_tol, double floor, const std::string& what) {
    ASSERT_EQ(a.size(), b.size()) << what;
    double worst = 0;
    int64_t worst_at = -1, bad = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      const double err = std::abs(double(a[i]) - double(b[i])) /
                         std::max(std::abs(double(a[i])), floor);
      if (!(err <= rel_tol)) ++bad;  // NaN counts as bad
      if (!(err <= worst)) {
        worst = std::isnan(err) ? std::numeric_limits<double>::infinity() : err;
        worst_at = int64_t(i);
      }
    }
    EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << a.size()
                      << " elements off by more than " << rel_tol << " relative; worst at "
                      << worst_at << ": cpu " << (worst_at >= 0 ? a[size_t(worst_at)] : 0.f)
                      << " gpu " << (worst_at >= 0 ? b[size_t(worst_at)] : 0.f);
  }

  // Exact equality of host values (ints, orders, actions), naming the first few mismatches.
  template <typename T>
  static void expect_equal_values(const std::vector<T>& a, const std::vector<T>& b,
                                  const std::string& what) {
    ASSERT_EQ(a.size(), b.size()) << what;
    int64_t bad = 0;
    std::string first;
    for (size_t i = 0; i < a.size(); ++i) {
      if (a[i] == b[i]) continue;
      if (++bad <= 5)
        first += " [" + std::to_string(i) + "] cpu " + std::to_string(a[i]) + " gpu " +
                 std::to_string(b[i]) + ";";
    }
    EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << a.size() << " differ:" << first;
  }

  // Root mean square of a CPU float tensor: the natural floor for the relative error of sums
  // of many products (an output near zero is a cancellation of terms of about this size, so
  // its absolute rounding error scales with them, not with its own value).
  double cpu_rms(const Tensor& cpu) {
    const std::vector<float> v = host<float>(*cpu_, cpu);
    double sum = 0;
    for (float x : v) sum += double(x) * double(x);
    return v.empty() ? 1.0 : std::max(std::sqrt(sum / double(v.size())), 1e-30);
  }

  std::unique_ptr<Backend> cpu_, gpu_;
};

}  // namespace bp::test
