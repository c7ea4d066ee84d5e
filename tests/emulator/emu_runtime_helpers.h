// Helpers for the emulated runtime's tests: a device buffer, and a fixture that leaves the
// emulated device as it found it (settings restored, device reset after a planted fault).
#pragma once
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "runtime.h"

namespace bp_emu::test {

template <typename T>
struct DeviceBuffer {
  T* ptr = nullptr;
  size_t count = 0;
  explicit DeviceBuffer(size_t n) : count(n) {
    EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&ptr), n * sizeof(T)), cudaSuccess);
  }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  std::vector<T> read() const {
    std::vector<T> out(count);
    EXPECT_EQ(cudaMemcpy(out.data(), ptr, count * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return out;
  }
  void write(const std::vector<T>& v) {
    ASSERT_EQ(v.size(), count);
    ASSERT_EQ(cudaMemcpy(ptr, v.data(), count * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
};

class EmulatedDevice : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_ = settings();
    reset_device();
  }
  void TearDown() override {
    settings() = saved_;
    reset_device();
  }
  Settings saved_;
};

}  // namespace bp_emu::test
