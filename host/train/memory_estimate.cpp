// The device-memory estimate of a run: the trainer's backend tensors walked layer by layer
// (the same shapes Net, TrainingStep, DeviceImages and BatchLoader allocate), plus the CUDA
// backend's workspaces, the shuffle's scratch and the context allowance. And the placement check.
#include "train/memory_estimate.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>

#include "core/backend.h"
#include "core/error.h"
#include "math/conv_geometry.h"

namespace bp {

namespace {

constexpr uint64_t kF32 = 4, kI32 = 4, kF64 = 8;
constexpr int64_t kRowsPerChunk = 256;  // kernels/cuda/column_sums.cuh: one partial sum per chunk
constexpr uint64_t kScratchAlign = 256;  // cuda/cudnn_conv.cu: scratch, then the padded input

int64_t chunks(int64_t rows) { return (rows + kRowsPerChunk - 1) / kRowsPerChunk; }
uint64_t align_up(uint64_t b) { return (b + kScratchAlign - 1) / kScratchAlign * kScratchAlign; }

// cuda/cudnn_conv.cu extra_after: zeros appended after the input so that cuDNN's symmetric
// padding reproduces TF's windows (the odd 'same' pixel at the bottom/right).
int extra_after(int in, int kernel, int stride, int pad, int out) {
  return std::max(0, (out - 1) * stride + kernel - 2 * pad - in);
}

// What walking the layers finds: the tensor bytes and the largest single request to the
// CUDA backend's shared workspace.
struct Walk {
  uint64_t parameters = 0, activations = 0;
  int64_t state_tensors = 0;   // parameters and buffers: the non-finite check's slots
  uint64_t workspace_need = 0; // the largest request to the shared workspace
  bool has_conv2d = false;
  void need(uint64_t bytes) { workspace_need = std::max(workspace_need, bytes); }
  void param(int64_t elements, int64_t batch_rows_for_bias_sum = -1) {
    parameters += uint64_t(elements) * kF32;
    ++state_tensors;
    need(uint64_t(chunks(elements)) * kF64);  // count_nonfinite: chunks(numel) x 1 column
    if (batch_rows_for_bias_sum >= 0)          // update_bias: chunks(rows) x cols
      need(uint64_t(chunks(batch_rows_for_bias_sum) * elements) * kF64);
  }
};

Walk walk_layers(const ModelSpec& spec, const Shape& input, int classes, int max_batch,
                 int train_batch) {
  Walk w;
  const uint64_t B = uint64_t(max_batch);
  Shape shape = input;
  std::map<std::string, int> per_type;
  auto elements = [](const Shape& s) { return shape_elements(s); };
  // dfa: each weighted layer above the lowest one receives, at its input, the direct feedback
  // of the weighted layer below it: D [classes, in] and the feedback buffer [B, in].
  bool weighted_below = false;
  auto dfa_at_input = [&](int64_t in) {
    if (spec.feedback == Feedback::Dfa && weighted_below) {
      w.param(int64_t(classes) * in);
      w.activations += B * uint64_t(in) * kF32;
    }
    weighted_below = true;
  };
  auto dense = [&](const std::string& name, int units, bool bias) {
    BP_CHECK(shape.size() == 1, "dense layer " << name << " needs a flat input, got "
                                               << shape_string(shape) << " (add a flatten layer before it)");
    const int64_t in = shape[0];
    dfa_at_input(in);
    w.param(int64_t(units) * in);
    if (has_feedback_weights(spec.feedback)) w.param(int64_t(units) * in);  // B
    if (bias) w.param(units, train_batch);
    w.activations += B * uint64_t(units) * kF32 + B * uint64_t(in) * kF32;  // out_, dx_
    shape = {units};
  };
  for (const LayerSpec& ls : spec.layers) {
    const std::string name = ls.type + std::to_string(++per_type[ls.type]);
    const int64_t in_elems = elements(shape);
    if (ls.type == "dense") {
      dense(name, ls.units, ls.bias);
    } else if (ls.type == "relu" || ls.type == "dropout") {
      w.activations += B * uint64_t(in_elems) * kF32;  // out_ (the feedback is gated or masked in place)
    } else if (ls.type == "flatten") {
      shape = {in_elems};
    } else if (ls.type == "conv2d" || ls.type == "local2d") {
      BP_CHECK(shape.size() == 3, ls.type << " layer " << name << " needs an HxWxC input, got "
                                          << shape_string(shape));
      const Conv2dGeometry g = make_conv_geometry(
          int(shape[0]), int(shape[1]), int(shape[2]), ls.filters, ls.kernel_h, ls.kernel_w,
          ls.stride_h, ls.stride_w, ls.padding == "same");
      BP_CHECK(g.out_h > 0 && g.out_w > 0, ls.type << " layer " << name << ": a " << ls.kernel_h
                                                   << "x" << ls.kernel_w << " 'valid' kernel does not fit the "
                                                   << shape_string(shape) << " input");
      dfa_at_input(in_elems);
      const bool local = ls.type == "local2d";
      const int64_t positions = g.positions();
      const int64_t out_elems = positions * g.out_c;
      const int64_t weights = local ? positions * g.out_c * g.patch_size() : int64_t(g.out_c) * g.patch_size();
      w.param(weights);
      if (has_feedback_weights(spec.feedback)) w.param(weights);  // B
      if (ls.bias) {
        const int64_t bias = local ? positions * g.out_c : g.out_c;
        w.param(bias, int64_t(train_batch) * out_elems / bias);
      }
      w.activations += B * uint64_t(out_elems) * kF32 + B * uint64_t(in_elems) * kF32;
      if (!local) {
        w.has_conv2d = true;
        const int eh = extra_after(g.in_h, g.kernel_h, g.stride_h, g.pad_top, g.out_h);
        const int ew = extra_after(g.in_w, g.kernel_w, g.stride_w, g.pad_left, g.out_w);
        const uint64_t padded =
            eh > 0 || ew > 0 ? B * uint64_t(g.in_h + eh) * uint64_t(g.in_w + ew) * uint64_t(g.in_c) * kF32 : 0;
        w.need(align_up(kCudnnScratchAllowanceBytes) + padded);
      }
      shape = {g.out_h, g.out_w, g.out_c};
    } else if (ls.type == "batchnorm") {
      const int64_t channels = shape.back();
      for (int i = 0; i < 4; ++i) w.param(channels);        // gamma, beta, moving mean, variance
      w.parameters += 2 * uint64_t(channels) * kF32;         // saved mean, 1/std (not checkpointed)
      w.activations += 2 * B * uint64_t(in_elems) * kF32;    // out_, dx_
      const int64_t rows = int64_t(B) * (in_elems / channels);
      w.need(uint64_t(chunks(rows) * channels + 2 * channels) * kF64);
    } else if (ls.type == "maxpool2d") {
      BP_CHECK(shape.size() == 3, "maxpool2d layer " << name << " needs an HxWxC input, got "
                                                     << shape_string(shape));
      BP_CHECK(shape[0] >= ls.pool && shape[1] >= ls.pool,
               "maxpool2d layer " << name << ": pool " << ls.pool << " is larger than the input "
                                  << shape_string(shape));
      const Pool2dGeometry g = make_pool_geometry(int(shape[0]), int(shape[1]), int(shape[2]),
                                                  ls.pool, ls.pool_stride);
      shape = {g.out_h, g.out_w, g.channels};
      w.activations += B * uint64_t(elements(shape)) * kF32 + B * uint64_t(in_elems) * kF32;
    } else {
      BP_FAIL("unknown layer type \"" << ls.type << "\"");
    }
    for (int64_t d : shape)
      BP_CHECK(d > 0, "layer " << name << " leaves an empty output " << shape_string(shape)
                               << " for input " << shape_string(input));
  }
  dense("output", classes, spec.output.bias);
  // TrainingStep: action (int32), error and dense output error, at the net's largest batch.
  w.activations += B * kI32 + B * kF32 + B * uint64_t(classes) * kF32;
  return w;
}

// A split as DeviceImages holds it, and a BatchLoader over it with `batch` rows.
uint64_t split_bytes(int64_t count, const Shape& input) {
  return uint64_t(count) * uint64_t(shape_elements(input)) + uint64_t(count) * kI32 +
         uint64_t(std::max<int64_t>(count, 1)) * kI32;  // pixels, labels, order
}
uint64_t loader_bytes(int batch, const Shape& input) {
  return uint64_t(batch) * uint64_t(shape_elements(input)) * kF32 + uint64_t(batch) * kI32;
}

std::string part(const char* label, uint64_t bytes) {
  return std::string(label) + " " + format_bytes(bytes);
}

}  // namespace

std::string format_bytes(uint64_t bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double v = double(bytes);
  int unit = 0;
  while (v >= 1024 && unit < 4) {
    v /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, v >= 100 ? "%.0f %s" : v >= 10 ? "%.1f %s" : "%.2f %s", v,
                kUnits[unit]);
  return text;
}

RunMemoryEstimate estimate_run_memory(const TrainConfig& config, const Shape& input, int classes,
                                      int64_t train_images, int64_t test_images) {
  BP_CHECK(input.size() == 3 && input[0] > 0 && input[1] > 0 && input[2] > 0,
           "memory estimate: the image shape must be HxWxC, got " << shape_string(input));
  BP_CHECK(classes >= 2, "a classifier needs at least 2 classes, got " << classes);
  BP_CHECK(config.batch_size >= 1, "batch size must be >= 1, got " << config.batch_size);
  BP_CHECK(config.eval_batch >= 1, "evaluation batch must be >= 1, got " << config.eval_batch);
  BP_CHECK(train_images > 0, "memory estimate: no training images");
  BP_CHECK(test_images >= 0, "memory estimate: negative test image count " << test_images);
  RunMemoryEstimate e;
  e.max_batch = std::max(config.batch_size, config.eval_batch);

  // The images train() uploads: the (limited) training set split into train and validation
  // parts, or the test set a second time as validation (--val test); and the test set.
  const int64_t all_train =
      config.train_limit > 0 ? std::min(train_images, config.train_limit) : train_images;
  e.test_images = config.test_limit > 0 ? std::min(test_images, config.test_limit) : test_images;
  if (config.val == "holdout") {
    BP_CHECK(config.holdout_fraction > 0 && config.holdout_fraction < 1,
             "holdout fraction must be in (0, 1), got " << config.holdout_fraction);
    e.val_images = std::max<int64_t>(1, int64_t(double(all_train) * config.holdout_fraction));
    BP_CHECK(e.val_images < all_train, "holdout of " << e.val_images << " leaves no training images");
    e.train_images = all_train - e.val_images;
  } else {
    BP_CHECK(config.val == "test", "unknown validation protocol \"" << config.val
                                                                    << "\" (known: holdout, test)");
    e.train_images = all_train;
    e.val_images = e.test_images;
  }

  const Walk w = walk_layers(config.model, input, classes, e.max_batch, config.batch_size);
  e.parameters = w.parameters;
  e.activations = w.activations;
  e.data = split_bytes(e.train_images, input) + split_bytes(e.val_images, input) +
           split_bytes(e.test_images, input);
  e.batches = loader_bytes(config.batch_size, input) + 2 * loader_bytes(config.eval_batch, input);
  // The stats, the non-finite counters and the training step's REINFORCE baseline (one
  // float64, allocated whatever the rule).
  e.other = kStatCount * kF64 + uint64_t(w.state_tensors) * kF64 + kF64;
  if (config.probe_size > 0) {  // train/update_probe.h: a loader, stats, actions and errors
    const uint64_t p = uint64_t(std::min<int64_t>({config.probe_size, e.train_images, e.max_batch}));
    e.batches += loader_bytes(int(p), input) + uint64_t(e.train_images) * kI32;
    e.other += kStatCount * kF64 + p * kI32 +
               (config.rule == Rule::BrainProp ? p : p * uint64_t(classes)) * kF32;
  }

  // The shared workspace grows to max(request, 2 x its size) and keeps every outgrown buffer
  // (a captured graph may point at it), so it holds less than 4x the largest request.
  e.workspace = kCublasWorkspaceBytes + 4 * w.workspace_need;
  // seeded_permutation: 64-bit keys, then thrust's radix sort (alternate keys and int32
  // values, and its temporary storage), freed when the shuffle ends.
  e.shuffle = uint64_t(e.train_images) * (kF64 + kF64 + kI32) + (uint64_t(1) << 20);
  e.context = kCudaContextBytes;
  return e;
}

RunMemoryEstimate estimate_run_memory(const TrainConfig& config, const Dataset& data) {
  return estimate_run_memory(config, {data.train.height, data.train.width, data.train.channels},
                             data.classes, data.train.count, data.test.count);
}

std::string RunMemoryEstimate::summary() const {
  std::ostringstream out;
  out << part("parameters", parameters) << " + " << part("activations", activations) << " + "
      << part("data", data) << " + " << part("batches", batches) << " + "
      << part("workspace", workspace + shuffle) << " + " << part("context", context) << " = "
      << format_bytes(total());
  return out.str();
}

std::string RunMemoryEstimate::breakdown() const {
  std::ostringstream out;
  char line[256];
  auto row = [&](const char* label, uint64_t bytes, const std::string& what) {
    std::snprintf(line, sizeof line, "  %-12s %12s  %s\n", label, format_bytes(bytes).c_str(),
                  what.c_str());
    out << line;
  };
  row("parameters", parameters, "weights, biases, batch-norm gamma/beta and statistics");
  row("activations", activations,
      "layer outputs and feedback buffers at " + std::to_string(max_batch) + " rows");
  row("data", data,
      "uint8 images, int32 labels and orders: " + std::to_string(train_images) + " train, " +
          std::to_string(val_images) + " validation, " + std::to_string(test_images) + " test");
  row("batches", batches, "float32 batch buffers of the train, validation, test and probe loaders");
  row("other", other, "statistics, non-finite counters, the REINFORCE baseline and the probe's errors");
  row("tensors", tensor_bytes(), "= what the trainer allocates on the backend (exact)");
  row("workspace", workspace,
      "CUDA: cuBLAS " + format_bytes(kCublasWorkspaceBytes) +
          " + shared workspace (cuDNN scratch allowance, padded inputs, reductions) with outgrown copies");
  row("shuffle", shuffle, "CUDA: the epoch shuffle's keys and sort scratch (transient)");
  row("context", context, "CUDA: per-process context and library kernels (allowance)");
  row("total", total(), "on a GPU; the CPU backend needs the tensors only");
  return out.str();
}

void check_gpu_placement(const std::vector<PlacedRun>& runs, const std::vector<GpuInfo>& gpus) {
  std::map<int, size_t> slot;  // GPU index -> position in gpus
  for (size_t i = 0; i < gpus.size(); ++i) slot[gpus[i].index] = i;
  std::vector<uint64_t> need(gpus.size(), 0);
  std::vector<int> count(gpus.size(), 0);
  std::vector<const PlacedRun*> largest(gpus.size(), nullptr);
  for (const PlacedRun& r : runs) {
    auto it = slot.find(r.gpu);
    BP_CHECK(it != slot.end(), "run " << r.name << " is placed on GPU " << r.gpu
                                      << ", which is not among the " << gpus.size() << " GPUs given");
    const size_t g = it->second;
    need[g] += r.estimate.total();
    ++count[g];
    if (!largest[g] || r.estimate.total() > largest[g]->estimate.total()) largest[g] = &r;
  }
  std::ostringstream errors;
  int bad = 0;
  for (size_t g = 0; g < gpus.size(); ++g) {
    if (need[g] <= gpus[g].free_bytes) continue;
    if (bad++) errors << "; ";
    errors << "GPU " << gpus[g].index << " (" << gpus[g].name << ", "
           << format_bytes(gpus[g].free_bytes) << " free of " << format_bytes(gpus[g].total_bytes)
           << "): " << count[g] << (count[g] == 1 ? " concurrent run needs " : " concurrent runs need ")
           << format_bytes(need[g]) << " (largest: " << largest[g]->name << " "
           << format_bytes(largest[g]->estimate.total()) << " = " << largest[g]->estimate.summary()
           << ")";
  }
  BP_CHECK(bad == 0, errors.str() << "; use fewer --jobs per GPU or more --gpus");
}

std::vector<PlacedRun> largest_per_gpu(const std::vector<PlacedRun>& runs, int slots_per_gpu) {
  BP_CHECK(slots_per_gpu >= 1, "runs per GPU must be >= 1, got " << slots_per_gpu);
  std::vector<size_t> order(runs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return runs[a].estimate.total() > runs[b].estimate.total();
  });
  std::map<int, int> taken;
  std::vector<bool> keep(runs.size(), false);
  for (size_t i : order)
    if (taken[runs[i].gpu]++ < slots_per_gpu) keep[i] = true;
  std::vector<PlacedRun> out;
  for (size_t i = 0; i < runs.size(); ++i)
    if (keep[i]) out.push_back(runs[i]);
  return out;
}

}  // namespace bp
