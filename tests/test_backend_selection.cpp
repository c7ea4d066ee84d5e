// Choosing a backend: auto falls back to the CPU where no GPU is usable, an explicit cuda
// says why it cannot run, and bad names fail before anything is loaded.
#include <gtest/gtest.h>

#include "core/backend.h"
#include "device_info.h"
#include "test_helpers.h"
#include "train/trainer.h"

namespace bp {
namespace {

TEST(BackendSelection, AutoPicksCudaOnlyWhereADeviceIsUsable) {
  std::string why;
  const bool gpu = cuda_backend_available(&why);
  auto be = make_backend("auto", 1);
  EXPECT_EQ(be->device(), gpu ? DeviceKind::CUDA : DeviceKind::CPU) << why;
  if (!gpu) {
    EXPECT_FALSE(why.empty()) << "an unusable GPU must come with a reason";
  }
}

TEST(BackendSelection, ExplicitCudaWithoutDeviceSaysWhy) {
  std::string why;
  if (cuda_backend_available(&why)) GTEST_SKIP() << "a CUDA device is present";
  test::expect_error([] { make_backend("cuda", 1); }, "--backend cuda");
}

TEST(BackendSelection, UnknownNamesAreRejected) {
  test::expect_error_all([] { make_backend("tpu", 1); }, {"unknown backend", "tpu"});
  test::expect_error_all([] { make_backend("cpu", 1, "fp16"); }, {"unknown math mode", "fp16"});
  EXPECT_EQ(parse_math_mode("tf32"), MathMode::TF32);
  EXPECT_STREQ(math_mode_name(MathMode::FP32), "fp32");
}

// Which GPUs a build's architecture list can run on, decided without touching a device.
TEST(BackendSelection, CompiledArchitecturesCoverTheRightDevices) {
  const std::string defaults = "80-real,90-real,90-virtual";
  EXPECT_TRUE(cuda::archs_cover(defaults, 8, 0));   // A100: sm_80 code
  EXPECT_TRUE(cuda::archs_cover(defaults, 8, 6));   // RTX 30xx: sm_80 code runs on 8.6
  EXPECT_TRUE(cuda::archs_cover(defaults, 8, 9));   // L40: 8.9
  EXPECT_TRUE(cuda::archs_cover(defaults, 9, 0));   // H100/H200
  EXPECT_TRUE(cuda::archs_cover(defaults, 10, 0));  // newer: the sm_90 PTX is JIT-compiled
  EXPECT_FALSE(cuda::archs_cover(defaults, 7, 5));  // T4: nothing for Turing
  EXPECT_FALSE(cuda::archs_cover("90-real", 10, 0));  // machine code only: no newer major
  EXPECT_FALSE(cuda::archs_cover("86-real", 8, 0));   // not on an older minor
  EXPECT_TRUE(cuda::archs_cover("75", 8, 0));         // plain "75" includes PTX
  EXPECT_TRUE(cuda::archs_cover("native", 7, 5));
  EXPECT_TRUE(cuda::archs_cover("80-real;90-real", 9, 0));  // CMake's own separator
}

}  // namespace
}  // namespace bp
