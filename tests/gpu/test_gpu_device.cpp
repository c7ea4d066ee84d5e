// The CUDA backend names its device and math mode, and `brainprop info`'s inventory agrees.
#include "device_info.h"
#include "gpu_parity.h"

namespace bp::test {
namespace {

TEST_F(GpuParity, BackendNamesItsDeviceAndMathMode) {
  const cuda::CudaInventory inv = cuda::query_cuda();
  ASSERT_FALSE(inv.devices.empty());
  EXPECT_TRUE(inv.compiled);
  EXPECT_NE(gpu_->name().find(inv.devices[0].name), std::string::npos) << gpu_->name();
  EXPECT_NE(gpu_->name().find("fp32"), std::string::npos) << gpu_->name();
  EXPECT_EQ(gpu_->device(), DeviceKind::CUDA);
  auto tf32 = make_cuda_backend(0, MathMode::TF32);
  EXPECT_NE(tf32->name().find("tf32"), std::string::npos) << tf32->name();
}

}  // namespace
}  // namespace bp::test
