// Device memory of a training run, estimated from the model and the data set's shape before
// anything is allocated, and the check that the runs placed on a GPU at once fit its free
// memory. Pure arithmetic on the layer shapes (microseconds, no allocation): a sweep estimates
// every run. tests/test_memory_estimate.cpp checks that the tensor part equals, byte for byte,
// what the real trainer allocates through a counting backend. docs/design.md ("Device memory")
// says what is counted and where the constants come from.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/backend.h"  // GpuInfo, cuda_devices()
#include "core/tensor.h"
#include "data/dataset.h"
#include "train/train_config.h"

namespace bp {

// Allowances for what the CUDA backend holds beyond its tensors (bytes). Stated, not measured
// per run: see docs/design.md.
// cuBLAS's own workspace, allocated once by the device context (cuda/device_context.cu).
constexpr uint64_t kCublasWorkspaceBytes = uint64_t(32) << 20;
// The most cuDNN scratch one convolution plan may take (CudnnConvolutions::kMaxWorkspaceBytes,
// cuda/cudnn_conv.h): the plan chooser skips algorithms that need more.
constexpr uint64_t kCudnnScratchCapBytes = uint64_t(512) << 20;
// What the estimate allows for one plan's cuDNN scratch: the paper's 3x3 convolutions need far
// less than the cap with the implicit-GEMM algorithms the heuristics pick; a run whose plans take
// more (BRAINPROP_CUDNN_VERBOSE=1 prints each plan's workspace) can exceed the estimate by up to
// 4 x (cap - allowance).
constexpr uint64_t kCudnnScratchAllowanceBytes = uint64_t(128) << 20;
// The per-process CUDA context with the cuBLAS and cuDNN kernels loaded (lazy module loading),
// as commonly observed on Hopper GPUs with CUDA 12/13; not yet measured on this project's GPU.
constexpr uint64_t kCudaContextBytes = uint64_t(512) << 20;

// One run's device memory, in bytes. The first group is the backend tensors the trainer
// allocates (exactly); the second what the CUDA backend needs beside them (bounds/allowances).
struct RunMemoryEstimate {
  // Backend tensors, as train() allocates them:
  uint64_t parameters = 0;   // weights, biases, batch-norm gamma/beta, moving and saved statistics
  uint64_t activations = 0;  // each layer's output and feedback buffers and the head's buffers,
                             // at max(batch, eval_batch) rows
  uint64_t data = 0;         // train/validation/test images (uint8), labels and orders (int32)
  uint64_t batches = 0;      // the loaders' float32 batch and int32 label buffers (train,
                             // validation, test, and the update probe's with its own order)
  uint64_t other = 0;        // the stats and non-finite-count tensors, the probe's errors
  // CUDA only:
  uint64_t workspace = 0;    // cuBLAS workspace + the shared growable workspace (cuDNN scratch,
                             // padded convolution inputs, reductions) with its outgrown copies
  uint64_t shuffle = 0;      // transient: the epoch shuffle's keys and sort scratch
  uint64_t context = 0;      // the CUDA context allowance

  int max_batch = 0;         // rows the activation buffers hold
  int64_t train_images = 0, val_images = 0, test_images = 0;  // as uploaded (after limits, split)

  uint64_t tensor_bytes() const { return parameters + activations + data + batches + other; }
  uint64_t total() const { return tensor_bytes() + workspace + shuffle + context; }
  // "parameters 12.1 MiB + activations 1.02 GiB + data 52.4 MiB + batches 3.2 MiB + workspace
  // 1.06 GiB + context 512 MiB = 2.65 GiB": workspace includes the shuffle scratch; `other`
  // (a few bytes) is in the total only.
  std::string summary() const;
  // One line per part with what it holds, for `brainprop inspect --memory`.
  std::string breakdown() const;
};

// The estimate for `config` (its model, rule, batch_size, eval_batch, val, holdout_fraction,
// train_limit, test_limit) on a data set of `classes` classes whose images are `input`
// {H, W, C} and which holds `train_images` and `test_images` images (before or after the
// limits: the config's limits are applied here). Throws bp::Error for a model that does not
// fit the input, as building the net would.
RunMemoryEstimate estimate_run_memory(const TrainConfig& config, const Shape& input, int classes,
                                      int64_t train_images, int64_t test_images);
// The same for a loaded data set (its image shape, classes and split sizes).
RunMemoryEstimate estimate_run_memory(const TrainConfig& config, const Dataset& data);

// "0 B", "812 B", "1.5 KiB", "12.3 MiB", "1.23 GiB" (binary units, three significant digits).
std::string format_bytes(uint64_t bytes);

// --- placement ---

struct PlacedRun {
  std::string name;  // e.g. "fashion-mnist-deep-brainprop-s1"
  int gpu = 0;       // the GpuInfo::index of the GPU it runs on
  RunMemoryEstimate estimate;
};

// Throws bp::Error when the runs placed on some GPU at once need more than its free memory,
// naming the GPU, its free memory, how many runs need how much, the largest run and its
// breakdown, and what to do ("use fewer --jobs per GPU or more --gpus"). `runs` is the set that
// runs concurrently (for a sweep with k slots per GPU: the k largest estimates of each GPU);
// `gpus` as cuda_devices() reports them (free_bytes is the budget). Also throws for a run whose
// gpu is not in `gpus`. Returns normally when everything fits. Pure: no device is touched.
void check_gpu_placement(const std::vector<PlacedRun>& runs, const std::vector<GpuInfo>& gpus);

// The worst case of what runs at once when each GPU runs at most `slots_per_gpu` of the runs
// placed on it at a time: the `slots_per_gpu` largest estimates of each GPU (ties keep the
// earlier run), in the order of `runs`. What check_gpu_placement() should be given for a queue.
std::vector<PlacedRun> largest_per_gpu(const std::vector<PlacedRun>& runs, int slots_per_gpu);

}  // namespace bp
