// Helpers shared by the emulator's library-fake tests: device buffers, random data, float64
// reference arithmetic and tolerance checks. The references here are written independently of
// the fakes (straightforward loops over logical indices), so that a fake and its test do not
// share an indexing mistake.
#pragma once
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace emu_test {

// One cudaMalloc'd float array; freed with the object.
class DeviceFloats {
 public:
  explicit DeviceFloats(size_t count) : count_(count) {
    void* p = nullptr;
    EXPECT_EQ(cudaMalloc(&p, bytes() ? bytes() : 4), cudaSuccess);
    ptr_ = static_cast<float*>(p);
  }
  explicit DeviceFloats(const std::vector<float>& host) : DeviceFloats(host.size()) { upload(host); }
  ~DeviceFloats() { cudaFree(ptr_); }
  DeviceFloats(const DeviceFloats&) = delete;
  DeviceFloats& operator=(const DeviceFloats&) = delete;

  float* get() const { return ptr_; }
  size_t size() const { return count_; }
  size_t bytes() const { return count_ * sizeof(float); }

  void upload(const std::vector<float>& host) {
    ASSERT_EQ(host.size(), count_);
    ASSERT_EQ(cudaMemcpy(ptr_, host.data(), bytes(), cudaMemcpyHostToDevice), cudaSuccess);
  }
  // Synchronises the device first, so queued work has finished.
  std::vector<float> download() const {
    std::vector<float> host(count_);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(host.data(), ptr_, bytes(), cudaMemcpyDeviceToHost), cudaSuccess);
    return host;
  }
  void fill_nan() { ASSERT_EQ(cudaMemset(ptr_, 0xff, bytes()), cudaSuccess); }

 private:
  size_t count_ = 0;
  float* ptr_ = nullptr;
};

inline std::vector<float> random_floats(size_t count, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(count);
  for (float& x : v) x = dist(gen);
  return v;
}

inline std::vector<float> nan_floats(size_t count) {
  return std::vector<float>(count, std::numeric_limits<float>::quiet_NaN());
}

// A value together with the sum of the magnitudes of the terms that produced it: the scale a
// floating-point accumulation error is relative to.
struct Exact {
  double value = 0;
  double magnitude = 0;
  void add(double term) {
    value += term;
    magnitude += std::fabs(term);
  }
};

// |actual - expected.value| <= rel * expected.magnitude (+ a denormal floor), else a failure
// naming `what` and the index.
inline ::testing::AssertionResult within(const std::vector<float>& actual,
                                         const std::vector<Exact>& expected, double rel,
                                         const std::string& what) {
  if (actual.size() != expected.size())
    return ::testing::AssertionFailure() << what << ": " << actual.size() << " values, expected "
                                         << expected.size();
  int bad = 0;
  ::testing::AssertionResult result = ::testing::AssertionSuccess();
  std::string first;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double err = std::fabs(double(actual[i]) - expected[i].value);
    const double tol = rel * expected[i].magnitude + 1e-30;
    if (!(err <= tol)) {  // also catches NaN
      if (bad++ == 0)
        first = what + "[" + std::to_string(i) + "] = " + std::to_string(actual[i]) +
                ", expected " + std::to_string(expected[i].value) + " (error " +
                std::to_string(err) + ", tolerance " + std::to_string(tol) + ")";
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << actual.size()
                                       << " values out of tolerance; first: " << first;
}

inline float with_bits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

}  // namespace emu_test
