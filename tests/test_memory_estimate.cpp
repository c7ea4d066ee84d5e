// The memory estimate against what the real trainer allocates: train() runs on a backend that
// forwards every op to the CPU backend and counts the bytes of every tensor it allocates (live
// and peak); the estimate's tensor part must equal the peak exactly, for each paper net, both
// rules and both validation protocols. Also: activations grow linearly with the batch, the
// estimate is fast, format_bytes, and the placement check refuses an overfull GPU with the
// numbers and accepts one that fits.
#include <gtest/gtest.h>

#include <chrono>
#include <random>

#include "model/model_spec.h"
#include "test_helpers.h"
#include "train/memory_estimate.h"
#include "train/trainer.h"

namespace bp {
namespace {

class CountingBackend final : public Backend {
 public:
  explicit CountingBackend(std::unique_ptr<Backend> inner) : in_(std::move(inner)) {}
  uint64_t live = 0, peak = 0, allocations = 0;

  Tensor empty(const Shape& s, DType d) override {
    Tensor inner = in_->empty(s, d);
    const size_t bytes = inner.bytes();
    live += bytes;
    peak = std::max(peak, live);
    ++allocations;
    // A storage of its own whose release gives the bytes back and drops the inner tensor.
    auto storage = std::make_shared<Storage>();
    storage->data = inner.raw();
    storage->bytes = bytes;
    storage->device = inner.device();
    storage->release = [this, inner, bytes](void*) mutable {
      live -= bytes;
      inner = Tensor();
    };
    if (!storage->data) {  // an empty tensor: the release would never run
      live -= bytes;
      storage->release = nullptr;
    }
    return Tensor(std::move(storage), s, d);
  }
  void count_nonfinite(const Tensor& t, Tensor& counts, int64_t slot) override {
    in_->count_nonfinite(t, counts, slot);
  }
  DeviceKind device() const override { return in_->device(); }
  std::string name() const override { return "counting " + in_->name(); }
  void copy_from_host(Tensor& d, const void* s) override { in_->copy_from_host(d, s); }
  void copy_to_host(const Tensor& s, void* d) override { in_->copy_to_host(s, d); }
  void fill(Tensor& t, double v) override { in_->fill(t, v); }
  void synchronize() override { in_->synchronize(); }
  void gemm(bool ta, bool tb, double al, const Tensor& a, const Tensor& b, double be, Tensor& c) override {
    in_->gemm(ta, tb, al, a, b, be, c);
  }
  void add_row_bias(Tensor& y, const Tensor& b) override { in_->add_row_bias(y, b); }
  void update_bias(Tensor& b, const Tensor& dy, double d, double s) override { in_->update_bias(b, dy, d, s); }
  void gather_rows_scaled(const Tensor& w, const Tensor& i, const Tensor& s, Tensor& o) override {
    in_->gather_rows_scaled(w, i, s, o);
  }
  void gather_rows_scaled_gated(const Tensor& w, const Tensor& i, const Tensor& s, const Tensor& y,
                                Tensor& o) override {
    in_->gather_rows_scaled_gated(w, i, s, y, o);
  }
  void scatter_update_rows(Tensor& w, const Tensor& i, const Tensor& s, const Tensor& x, double d,
                           double st) override {
    in_->scatter_update_rows(w, i, s, x, d, st);
  }
  void scatter_update_bias(Tensor& b, const Tensor& i, const Tensor& s, double d, double st) override {
    in_->scatter_update_bias(b, i, s, d, st);
  }
  void relu_forward(const Tensor& x, Tensor& y) override { in_->relu_forward(x, y); }
  void relu_feedback(const Tensor& dy, const Tensor& y, Tensor& dx) override { in_->relu_feedback(dy, y, dx); }
  void brainprop_head(const Tensor& l, const Tensor& y, const BrainPropHeadArgs& args, Tensor& a,
                      Tensor& e, Tensor& st) override {
    in_->brainprop_head(l, y, args, a, e, st);
  }
  void reinforce_head(const Tensor& l, const Tensor& y, const ReinforceHeadArgs& args, Tensor& base,
                      Tensor& g, Tensor& st) override {
    in_->reinforce_head(l, y, args, base, g, st);
  }
  void softmax_xent_head(const Tensor& l, const Tensor& y, Tensor& g, Tensor& st) override {
    in_->softmax_xent_head(l, y, g, st);
  }
  void count_correct(const Tensor& l, const Tensor& y, Tensor& st) override { in_->count_correct(l, y, st); }
  void conv2d_forward(const Tensor& x, const Tensor& w, Tensor& y, const Conv2dGeometry& g) override {
    in_->conv2d_forward(x, w, y, g);
  }
  void conv2d_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx, const Conv2dGeometry& g) override {
    in_->conv2d_backward_data(dy, w, dx, g);
  }
  void conv2d_update(Tensor& w, const Tensor& dy, const Tensor& x, const Conv2dGeometry& g, double d,
                     double s) override {
    in_->conv2d_update(w, dy, x, g, d, s);
  }
  void local2d_forward(const Tensor& x, const Tensor& w, Tensor& y, const Conv2dGeometry& g) override {
    in_->local2d_forward(x, w, y, g);
  }
  void local2d_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx, const Conv2dGeometry& g) override {
    in_->local2d_backward_data(dy, w, dx, g);
  }
  void local2d_update(Tensor& w, const Tensor& dy, const Tensor& x, const Conv2dGeometry& g, double d,
                      double s) override {
    in_->local2d_update(w, dy, x, g, d, s);
  }
  void batchnorm_forward_train(const Tensor& x, const Tensor& ga, const Tensor& be, Tensor& y, Tensor& m,
                               Tensor& inv, Tensor& rm, Tensor& rv, double mom, double eps) override {
    in_->batchnorm_forward_train(x, ga, be, y, m, inv, rm, rv, mom, eps);
  }
  void batchnorm_forward_eval(const Tensor& x, const Tensor& ga, const Tensor& be, const Tensor& rm,
                              const Tensor& rv, double eps, Tensor& y) override {
    in_->batchnorm_forward_eval(x, ga, be, rm, rv, eps, y);
  }
  void batchnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& m, const Tensor& inv,
                          Tensor& ga, Tensor& be, Tensor* dx, double d, double s) override {
    in_->batchnorm_backward(dy, x, m, inv, ga, be, dx, d, s);
  }
  void maxpool2d_forward(const Tensor& x, Tensor& y, const Pool2dGeometry& g) override {
    in_->maxpool2d_forward(x, y, g);
  }
  void maxpool2d_backward(const Tensor& dy, const Tensor& x, Tensor& dx, const Pool2dGeometry& g) override {
    in_->maxpool2d_backward(dy, x, dx, g);
  }
  void dropout_apply(const Tensor& x, Tensor& y, float rate, uint64_t seed, uint64_t step,
                     uint32_t layer) override {
    in_->dropout_apply(x, y, rate, seed, step, layer);
  }
  void gather_batch(const Tensor& im, const Tensor& lab, const Tensor& order, int64_t first, Tensor& x,
                    Tensor& y) override {
    in_->gather_batch(im, lab, order, first, x, y);
  }
  void seeded_permutation(Tensor& o, uint64_t seed, RngStream s, uint32_t round) override {
    in_->seeded_permutation(o, seed, s, round);
  }


 private:
  std::unique_ptr<Backend> in_;
};

// Random pixels and labels of the given shape (the estimate only cares about the counts).
Dataset fake_data(int64_t train, int64_t test, int h, int w, int c, int classes) {
  std::mt19937 rng(7);
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
  d.source = "memory-estimate test";
  d.classes = classes;
  for (int i = 0; i < classes; ++i) d.class_names.push_back(std::to_string(i));
  fill(d.train, train);
  fill(d.test, test);
  return d;
}

TrainConfig small_config(const std::string& model, Rule rule, const std::string& val) {
  TrainConfig c;
  c.model_source = model;
  c.model = load_model(model);
  c.rule = rule;
  c.batch_size = 16;
  c.eval_batch = 40;
  c.max_epochs = 1;
  c.val = val;
  c.progress = false;
  c.threads = 2;
  return c;
}

struct Case {
  std::string model;
  int h, w, c;
  Rule rule;
  std::string val;
  Feedback feedback = Feedback::Symmetric;
};

// Trains one epoch of the real trainer on the counting backend; the estimate's tensors must be
// exactly the peak it saw.
void expect_exact(const Case& k) {
  SCOPED_TRACE(k.model + " " + rule_name(k.rule) + " val=" + k.val + " " + feedback_name(k.feedback));
  const int classes = 10;
  const Dataset data = fake_data(75, 30, k.h, k.w, k.c, classes);
  TrainConfig config = small_config(k.model, k.rule, k.val);
  config.model.feedback = k.feedback;
  CountingBackend be(make_cpu_backend(2));
  train(config, data, be, nullptr);
  EXPECT_GT(be.allocations, 10u);
  EXPECT_EQ(be.live, 0u) << "everything is given back when train() returns";
  const RunMemoryEstimate e = estimate_run_memory(config, {k.h, k.w, k.c}, classes, 75, 30);
  EXPECT_EQ(e.tensor_bytes(), be.peak) << e.breakdown();
  EXPECT_EQ(estimate_run_memory(config, data).total(), e.total());
  EXPECT_GT(e.parameters, 0u);
  EXPECT_GT(e.activations, 0u);
  EXPECT_GT(e.total(), e.tensor_bytes() + kCudaContextBytes);
}

TEST(MemoryEstimate, EqualsTheTrainersAllocationsForDense) {
  expect_exact({"dense", 28, 28, 1, Rule::BrainProp, "holdout"});
  expect_exact({"dense", 28, 28, 1, Rule::Ebp, "test"});
}

TEST(MemoryEstimate, EqualsTheTrainersAllocationsForConv) {
  expect_exact({"conv", 28, 28, 1, Rule::BrainProp, "holdout"});
  expect_exact({"conv", 32, 32, 3, Rule::Ebp, "test"});
}

TEST(MemoryEstimate, EqualsTheTrainersAllocationsForLocconAndDeep) {
  expect_exact({"loccon", 28, 28, 1, Rule::BrainProp, "holdout"});
  expect_exact({"deep", 32, 32, 3, Rule::Ebp, "holdout"});
}

// fa's B and dfa's D with its feedback buffers (docs/design.md "Feedback pathways").
TEST(MemoryEstimate, EqualsTheTrainersAllocationsWithRandomFeedback) {
  expect_exact({"dense", 28, 28, 1, Rule::Ebp, "test", Feedback::Fa});
  expect_exact({"conv", 28, 28, 1, Rule::BrainProp, "holdout", Feedback::Dfa});
  expect_exact({"dense", 28, 28, 1, Rule::Ebp, "test", Feedback::Dfa});
}

TEST(MemoryEstimate, ActivationsGrowLinearlyWithTheBatch) {
  for (const std::string model : {"dense", "conv", "loccon", "deep"}) {
    SCOPED_TRACE(model);
    TrainConfig c = small_config(model, Rule::BrainProp, "holdout");
    c.eval_batch = 1;  // the largest batch is the training batch
    std::vector<uint64_t> act;
    for (int b : {100, 200, 400}) {
      c.batch_size = b;
      const RunMemoryEstimate e = estimate_run_memory(c, {32, 32, 3}, 10, 50000, 10000);
      EXPECT_EQ(e.max_batch, b);
      act.push_back(e.activations);
      EXPECT_EQ(e.parameters, estimate_run_memory(small_config(model, Rule::Ebp, "test"), {32, 32, 3},
                                                  10, 50000, 10000).parameters)
          << "parameters do not depend on the batch or the rule";
    }
    EXPECT_EQ(act[1], 2 * act[0]);
    EXPECT_EQ(act[2], 4 * act[0]);
    // The evaluation batch counts when it is the larger one.
    c.batch_size = 100;
    c.eval_batch = 400;
    EXPECT_EQ(estimate_run_memory(c, {32, 32, 3}, 10, 50000, 10000).activations, act[2]);
  }
}

TEST(MemoryEstimate, CountsTheDataAsUploaded) {
  TrainConfig c = small_config("dense", Rule::BrainProp, "holdout");
  c.holdout_fraction = 0.1;
  RunMemoryEstimate e = estimate_run_memory(c, {28, 28, 1}, 10, 60000, 10000);
  EXPECT_EQ(e.train_images, 54000);
  EXPECT_EQ(e.val_images, 6000);
  EXPECT_EQ(e.test_images, 10000);
  EXPECT_EQ(e.data, uint64_t(70000) * (784 + 4 + 4));
  c.val = "test";  // the test set is uploaded twice: as validation and as test
  e = estimate_run_memory(c, {28, 28, 1}, 10, 60000, 10000);
  EXPECT_EQ(e.data, uint64_t(80000) * (784 + 4 + 4));
  c.train_limit = 1000;
  c.test_limit = 500;
  e = estimate_run_memory(c, {28, 28, 1}, 10, 60000, 10000);
  EXPECT_EQ(e.train_images, 1000);
  EXPECT_EQ(e.test_images, 500);
}

TEST(MemoryEstimate, IsFastForEveryPaperNetAtTinyImageNetSize) {
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; ++i)
    for (const std::string model : {"dense", "conv", "loccon", "deep"})
      estimate_run_memory(small_config(model, Rule::BrainProp, "holdout"), {64, 64, 3}, 200, 100000,
                          10000);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(seconds, 1.0) << "400 estimates";
}

TEST(MemoryEstimate, RefusesAModelThatDoesNotFitTheInput) {
  TrainConfig c = small_config("dense", Rule::BrainProp, "holdout");
  test::expect_error([&] { estimate_run_memory(c, {0, 28, 1}, 10, 100, 10); }, "HxWxC");
  c.model.layers.erase(c.model.layers.begin());  // no flatten before the dense layers
  test::expect_error([&] { estimate_run_memory(c, {28, 28, 1}, 10, 100, 10); }, "flat input");
}

TEST(FormatBytes, BinaryUnitsThreeDigits) {
  EXPECT_EQ(format_bytes(0), "0 B");
  EXPECT_EQ(format_bytes(812), "812 B");
  EXPECT_EQ(format_bytes(1536), "1.50 KiB");
  EXPECT_EQ(format_bytes(uint64_t(12.3 * (1 << 20))), "12.3 MiB");
  EXPECT_EQ(format_bytes(uint64_t(1.23 * (uint64_t(1) << 30))), "1.23 GiB");
  EXPECT_EQ(format_bytes(uint64_t(139.8 * (uint64_t(1) << 30))), "140 GiB");
}

PlacedRun run_of(const std::string& name, int gpu, uint64_t gib_parameters) {
  PlacedRun r;
  r.name = name;
  r.gpu = gpu;
  r.estimate.parameters = gib_parameters << 30;
  r.estimate.context = kCudaContextBytes;
  return r;
}

GpuInfo gpu_of(int index, double free_gib) {
  return GpuInfo{index, "NVIDIA H200", uint64_t(143.7 * (uint64_t(1) << 30)),
                     uint64_t(free_gib * double(uint64_t(1) << 30))};
}

TEST(GpuPlacement, AcceptsRunsThatFit) {
  const std::vector<GpuInfo> gpus{gpu_of(0, 20), gpu_of(1, 20)};
  // 2 x 9.5 GiB on each GPU: 19 GiB of 20.
  check_gpu_placement({run_of("a", 0, 9), run_of("b", 0, 9), run_of("c", 1, 9), run_of("d", 1, 9)},
                      gpus);
  check_gpu_placement({}, gpus);
}

TEST(GpuPlacement, RefusesAnOverfullGpuWithTheNumbers) {
  const std::vector<GpuInfo> gpus{gpu_of(0, 20), gpu_of(3, 139.8)};
  // GPU 3 fits; GPU 0 gets 9.5 + 12.5 = 22 GiB.
  test::expect_error_all(
      [&] {
        check_gpu_placement({run_of("small-s1", 0, 9), run_of("fashion-mnist-deep-brainprop-s1", 0, 12),
                             run_of("other", 3, 100)},
                            gpus);
      },
      {"GPU 0 (NVIDIA H200, 20.0 GiB free of 144 GiB)", "2 concurrent runs need 22.0 GiB",
       "largest: fashion-mnist-deep-brainprop-s1 12.5 GiB = parameters 12.0 GiB",
       "context 512 MiB", "use fewer --jobs per GPU or more --gpus"});
  // Each GPU over its memory is named.
  test::expect_error_all(
      [&] { check_gpu_placement({run_of("x", 0, 30), run_of("y", 3, 140)}, gpus); },
      {"GPU 0 (", "GPU 3 (", "1 concurrent run needs"});
}

TEST(GpuPlacement, TheWorstCaseSetIsTheLargestRunsOfEachGpu) {
  const std::vector<PlacedRun> queue{run_of("a", 0, 1), run_of("b", 0, 5), run_of("c", 1, 2),
                                     run_of("d", 0, 3), run_of("e", 0, 5), run_of("f", 1, 9)};
  std::vector<std::string> names;
  for (const PlacedRun& r : largest_per_gpu(queue, 2)) names.push_back(r.name);
  EXPECT_EQ(names, (std::vector<std::string>{"b", "c", "e", "f"}));
  names.clear();
  for (const PlacedRun& r : largest_per_gpu(queue, 1)) names.push_back(r.name);
  EXPECT_EQ(names, (std::vector<std::string>{"b", "f"})) << "ties keep the earlier run";
  EXPECT_EQ(largest_per_gpu(queue, 10).size(), queue.size());
  // Four slots of 5.5, 5.5, 3.5 and 1.5 GiB on GPU 0 need 16 GiB: refused with 15 GiB free.
  test::expect_error([&] { check_gpu_placement(largest_per_gpu(queue, 4), {gpu_of(0, 15), gpu_of(1, 20)}); },
                     "4 concurrent runs need 16.0 GiB");
  check_gpu_placement(largest_per_gpu(queue, 2), {gpu_of(0, 15), gpu_of(1, 20)});
  test::expect_error([&] { largest_per_gpu(queue, 0); }, "runs per GPU must be >= 1");
}

TEST(GpuPlacement, RefusesARunOnAnUnknownGpu) {
  test::expect_error([&] { check_gpu_placement({run_of("a", 2, 1)}, {gpu_of(0, 20)}); },
                     "run a is placed on GPU 2, which is not among the 1 GPUs given");
}

}  // namespace
}  // namespace bp
