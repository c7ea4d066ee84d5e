// cuda_devices() reports each GPU's memory sanely, and the memory estimate bounds what a real
// training run allocates on the device: this process's use of the device's memory pool
// (cuda::pool_used_bytes, not disturbed by other processes, such as GPU tests that ctest runs
// in parallel) is read before the backend is made and at the end of each epoch (every tensor,
// workspace and plan is then alive), and the growth must lie between the estimate's tensors and
// its total. On the emulated device that growth is exactly the bytes allocated; on a GPU it
// leaves out cuDNN's own allocations and the context, which the allowances cover.
#include <random>

#include "device_info.h"
#include "gpu_parity.h"
#include "model/model_spec.h"
#include "train/memory_estimate.h"
#include "train/trainer.h"

namespace bp::test {
namespace {

TEST(GpuMemory, CudaDevicesReportsNameTotalAndFree) {
  std::string why;
  if (!cuda_backend_available(&why)) BP_GPU_SKIP("no CUDA device: " << why);
  const std::vector<GpuInfo> gpus = cuda_devices(&why);
  ASSERT_FALSE(gpus.empty()) << why;
  EXPECT_EQ(why, "");
  const cuda::CudaInventory inv = cuda::query_cuda();
  ASSERT_EQ(gpus.size(), inv.devices.size());
  for (size_t i = 0; i < gpus.size(); ++i) {
    EXPECT_EQ(gpus[i].index, int(i));
    EXPECT_EQ(gpus[i].name, inv.devices[i].name);
    EXPECT_GE(gpus[i].total_bytes, uint64_t(1) << 30) << gpus[i].name;
    EXPECT_GT(gpus[i].free_bytes, 0u);
    EXPECT_LE(gpus[i].free_bytes, gpus[i].total_bytes);
    std::printf("GPU %d %s: %s free of %s\n", gpus[i].index, gpus[i].name.c_str(),
                format_bytes(gpus[i].free_bytes).c_str(), format_bytes(gpus[i].total_bytes).c_str());
  }
  // What this process allocates shows up in its pool use (other processes' memory does not).
  const long long before = cuda::pool_used_bytes(0);
  if (before < 0) return;  // no memory pools on this device: nothing more to check
  auto be = make_cuda_backend(0, MathMode::FP32);
  Tensor t = be->empty({64 << 20}, DType::U8);
  be->synchronize();
  EXPECT_GE(cuda::pool_used_bytes(0), before + (64 << 20));
#if defined(BRAINPROP_CUDA_EMULATOR)
  // A single process on the emulated device: its free memory drops by exactly as much.
  const std::vector<GpuInfo> after = cuda_devices(&why);
  ASSERT_FALSE(after.empty());
  EXPECT_EQ(after[0].free_bytes + uint64_t(cuda::pool_used_bytes(0) - before), gpus[0].free_bytes);
#endif
}

Dataset fake_data(int64_t train, int64_t test, int h, int w, int c, int classes) {
  std::mt19937 rng(3);
  auto fill = [&](ImageSet& s, int64_t n) {
    s.count = n;
    s.height = h;
    s.width = w;
    s.channels = c;
    s.pixels.resize(size_t(n * h * w * c));
    for (auto& p : s.pixels) p = uint8_t(rng());
    s.labels.resize(size_t(n));
    for (auto& l : s.labels) l = int32_t(rng() % uint32_t(classes));
  };
  Dataset d;
  d.name = "fake";
  d.source = "gpu memory test";
  d.classes = classes;
  for (int i = 0; i < classes; ++i) d.class_names.push_back(std::to_string(i));
  fill(d.train, train);
  fill(d.test, test);
  return d;
}

void expect_bounded(const std::string& model, int h, int w, int c, Rule rule) {
  SCOPED_TRACE(model);
  const Dataset data = fake_data(48, 24, h, w, c, 10);
  TrainConfig config;
  config.model_source = model;
  config.model = load_model(model);
  config.rule = rule;
  config.batch_size = 16;
  config.eval_batch = 24;
  config.max_epochs = 2;
  config.val = "test";
  config.progress = false;
  const RunMemoryEstimate e = estimate_run_memory(config, {h, w, c}, 10, 48, 24);

  std::string why;
  ASSERT_FALSE(cuda_devices(&why).empty()) << why;  // makes the context first
  const long long before = cuda::pool_used_bytes(0);
  ASSERT_GE(before, 0);
  long long highest = before;
  {
    auto be = make_cuda_backend(0, MathMode::FP32);
    // At the end of each epoch every tensor, plan and workspace of the run is alive.
    train(config, data, *be, [&](const std::string&) {
      be->synchronize();
      highest = std::max(highest, cuda::pool_used_bytes(0));
    });
  }
  const uint64_t used = uint64_t(highest - before);
  std::printf("%s: %s used on the device; estimate: tensors %s, total %s\n%s", model.c_str(),
              format_bytes(used).c_str(), format_bytes(e.tensor_bytes()).c_str(),
              format_bytes(e.total()).c_str(), e.breakdown().c_str());
  EXPECT_GE(used, e.tensor_bytes()) << "the tensors are allocated from the pool";
  EXPECT_LE(used, e.total()) << e.breakdown();
#if defined(BRAINPROP_CUDA_EMULATOR)
  // The emulated device has no context or library code: every allocation is the backend's.
  EXPECT_LE(used, e.total() - e.context) << e.breakdown();
#endif
}

TEST(GpuMemory, EstimateBoundsWhatATrainingRunUses) {
  std::string why;
  if (!cuda_backend_available(&why)) BP_GPU_SKIP("no CUDA device: " << why);
  if (cuda::pool_used_bytes(0) < 0) BP_GPU_SKIP("device 0 has no memory pool to measure this process's use of");
  expect_bounded("dense", 28, 28, 1, Rule::BrainProp);
  expect_bounded("conv", 28, 28, 1, Rule::Ebp);
}

}  // namespace
}  // namespace bp::test
