// Choosing a backend: auto falls back to the CPU where no GPU is usable, an explicit cuda
// says why it cannot run, and bad names fail before anything is loaded.
#include <gtest/gtest.h>

#include "core/backend.h"
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

}  // namespace
}  // namespace bp
