// Misuse of the CUDA backend fails with a bp::Error that says what is wrong, before any GPU
// work: host tensors handed to GPU ops (and GPU tensors to the CPU), float64 where the GPU
// computes in float32, and an allocation larger than the device.
#include "gpu_parity.h"
#include "test_helpers.h"

namespace bp::test {
namespace {

TEST_F(GpuParity, HostTensorsAreRefusedNamingTheOp) {
  Tensor host_x = cpu_->empty({4, 3}, DType::F32);
  Tensor dev_x = gpu_->empty({4, 3}, DType::F32), dev_y = gpu_->empty({4, 3}, DType::F32);
  cpu_->fill(host_x, 1.0);
  gpu_->fill(dev_x, 1.0);
  expect_error_all([&] { gpu_->relu_forward(host_x, dev_y); }, {"relu_forward", "cpu"});
  expect_error_all([&] { gpu_->relu_forward(dev_x, host_x); }, {"relu_forward", "cpu"});
  Tensor dev_c = gpu_->empty({4, 4}, DType::F32);
  expect_error([&] { gpu_->gemm(false, true, 1.0, host_x, dev_x, 0.0, dev_c); }, "gemm");
  expect_error([&] { gpu_->gemm(false, true, 1.0, dev_x, host_x, 0.0, dev_c); }, "gemm");
  Tensor host_c = cpu_->empty({4, 4}, DType::F32);
  expect_error([&] { gpu_->gemm(false, true, 1.0, dev_x, dev_x, 0.0, host_c); }, "gemm");
  expect_error([&] { gpu_->copy_to_host(host_x, nullptr); }, "copy_to_host");
  expect_error([&] { gpu_->fill(host_x, 0.0); }, "fill");

  Tensor host_labels = cpu_->empty({4}, DType::I32), dev_labels = gpu_->empty({4}, DType::I32);
  Tensor stats = gpu_->empty({kStatCount}, DType::F64);
  expect_error([&] { gpu_->count_correct(dev_x, host_labels, stats); }, "count_correct");

  Tensor images = cpu_->empty({4, 3}, DType::U8), order = gpu_->empty({4}, DType::I32);
  expect_error([&] { gpu_->gather_batch(images, dev_labels, order, 0, dev_x, dev_labels); },
               "gather_batch");

  // And the other way round: the CPU backend refuses GPU memory.
  Tensor host_a = cpu_->empty({4, 3}, DType::F32);
  expect_error([&] { cpu_->gemm(false, true, 1.0, dev_x, host_a, 0.0, host_c); }, "gemm");
  expect_error([&] { cpu_->copy_to_host(dev_x, nullptr); }, "copy");
}

TEST_F(GpuParity, Float64IsRefusedMentioningFloat32) {
  Tensor a = gpu_->empty({4, 3}, DType::F64), c = gpu_->empty({4, 4}, DType::F64);
  expect_error_all([&] { gpu_->gemm(false, true, 1.0, a, a, 0.0, c); }, {"gemm", "float32"});
  Tensor y = gpu_->empty({4, 3}, DType::F64);
  expect_error_all([&] { gpu_->relu_forward(a, y); }, {"relu_forward", "float32"});
  // Stats must be float64 [kStatCount].
  Tensor logits = gpu_->empty({4, 3}, DType::F32), labels = gpu_->empty({4}, DType::I32);
  Tensor short_stats = gpu_->empty({2}, DType::F64), f32_stats = gpu_->empty({kStatCount}, DType::F32);
  expect_error([&] { gpu_->count_correct(logits, labels, short_stats); }, "stats");
  expect_error([&] { gpu_->count_correct(logits, labels, f32_stats); }, "stats");
}

TEST_F(GpuParity, OutOfMemorySaysSoAndTheBackendStillWorks) {
  // 4 TiB: more than any GPU has.
  expect_error([&] { gpu_->empty({int64_t(1) << 40}, DType::F32); }, "out of GPU memory");
  // The failed allocation leaves the context usable.
  auto [cx, gx] = random_pair({1000}, 1);
  auto [cy, gy] = outputs({1000});
  cpu_->relu_forward(cx, cy);
  gpu_->relu_forward(gx, gy);
  expect_close(cy, gy, 0.0, 1.0, "relu after an out-of-memory error");
}

}  // namespace
}  // namespace bp::test
