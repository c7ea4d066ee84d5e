// The emulated device's runtime: memory registry, streams, events, capture, launch limits.
#include <gtest/gtest.h>

#include "runtime.h"

namespace {

TEST(EmulatedRuntime, DeviceMemoryIsPoisonedAndRegistered) {
  float* p = nullptr;
  ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&p), 16 * sizeof(float)), cudaSuccess);
  EXPECT_TRUE(bp_emu::is_device_range(p, 16 * sizeof(float)));
  EXPECT_FALSE(bp_emu::is_device_range(p, 17 * sizeof(float)));
  float host[16];
  ASSERT_EQ(cudaMemcpy(host, p, sizeof host, cudaMemcpyDeviceToHost), cudaSuccess);
  for (float v : host) EXPECT_TRUE(std::isnan(v));
  EXPECT_EQ(cudaFree(p), cudaSuccess);
  EXPECT_FALSE(bp_emu::is_device_range(p, 4));
}

}  // namespace
