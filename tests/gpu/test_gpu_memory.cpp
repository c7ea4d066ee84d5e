// cuda_devices() reports each GPU's memory sanely, and the memory estimate bounds what a real
// training run takes on the device: free memory is read before the backend is made and at the
// end of each epoch (every tensor, workspace and plan is then alive), and the drop must lie
// between the estimate's tensors and its total. On the emulated device the drop is exactly the
// bytes allocated (cudaMemGetInfo counts them); on a GPU it includes the pool's rounding and
// cuDNN's handle, which the workspace and context allowances cover.
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
  // Memory this process allocates shows up as less free memory.
  auto be = make_cuda_backend(0, MathMode::FP32);
  Tensor t = be->empty({64 << 20}, DType::U8);
  be->synchronize();
  const std::vector<GpuInfo> after = cuda_devices(&why);
  ASSERT_FALSE(after.empty());
  EXPECT_LE(after[0].free_bytes + (uint64_t(64) << 20), gpus[0].free_bytes);
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
  const std::vector<GpuInfo> before = cuda_devices(&why);  // makes the context first
  ASSERT_FALSE(before.empty()) << why;
  uint64_t lowest_free = before[0].free_bytes;
  {
    auto be = make_cuda_backend(0, MathMode::FP32);
    // At the end of each epoch every tensor, plan and workspace of the run is alive.
    train(config, data, *be, [&](const std::string&) {
      be->synchronize();
      const std::vector<GpuInfo> now = cuda_devices(&why);
      if (!now.empty()) lowest_free = std::min(lowest_free, now[0].free_bytes);
    });
  }
  const uint64_t used = before[0].free_bytes - lowest_free;
  std::printf("%s: %s used on the device; estimate: tensors %s, total %s\n%s", model.c_str(),
              format_bytes(used).c_str(), format_bytes(e.tensor_bytes()).c_str(),
              format_bytes(e.total()).c_str(), e.breakdown().c_str());
  EXPECT_GE(used, e.tensor_bytes()) << "the tensors are allocated on the device";
  EXPECT_LE(used, e.total()) << e.breakdown();
#if defined(BRAINPROP_CUDA_EMULATOR)
  // The emulated device has no context or library code: the drop is the allocations alone.
  EXPECT_LE(used, e.total() - e.context) << e.breakdown();
#endif
}

TEST(GpuMemory, EstimateBoundsWhatATrainingRunUses) {
  std::string why;
  if (!cuda_backend_available(&why)) BP_GPU_SKIP("no CUDA device: " << why);
  expect_bounded("dense", 28, 28, 1, Rule::BrainProp);
  expect_bounded("conv", 28, 28, 1, Rule::Ebp);
}

}  // namespace
}  // namespace bp::test
