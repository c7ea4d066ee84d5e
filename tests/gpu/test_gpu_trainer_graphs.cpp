// The trainer (train/trainer.h) on the GPU over several epochs with CUDA graphs, evaluation
// after every epoch, a learning-rate decay (a recapture) and a partial last batch (the plain
// path) in each epoch: (a) with graphs the run equals the run without graphs, (b) it matches
// the CPU run, and (c) a run stopped after 2 epochs and resumed (once more interrupted inside
// epoch 3 and resumed again) equals the uninterrupted 4-epoch run: the same history and the
// same final weights, bit for bit (docs/design.md: every GPU reduction has a fixed order, so a
// GPU run repeats bit for bit on one build, and a replayed step equals a plain one).
// Data: 1000 Fashion-MNIST training images (validation on 1000 test images), a small conv net
// with every stateful and stochastic layer (conv with bias, batch norm, max pool, dropout,
// dense with bias and L2, an output bias).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>

#include "data/dataset.h"
#include "gpu_parity.h"
#include "io/safetensors.h"
#include "model/model_spec.h"
#include "test_helpers.h"
#include "train/trainer.h"

namespace bp::test {
namespace {

namespace fs = std::filesystem;

// One tensor of a checkpoint: its name and raw bytes.
struct SafetensorBytes {
  std::string name;
  std::vector<uint8_t> bytes;
};

// A temporary run root; sub(name) is a run directory inside it (created by the trainer).
class TestDir {
 public:
  TestDir() : dir_("brainprop-gpu-trainer") {}
  std::string sub(const std::string& name) const { return (dir_.path() / name).string(); }

 private:
  TempDir dir_;
};

// A Backend that forwards every op to another and counts the step graphs the trainer records
// and replays: proof that a "graphs" run really replayed steps (StepRunner falls back to plain
// steps, saying so only on stderr, when recording fails).
class CountingBackend : public Backend {
 public:
  explicit CountingBackend(Backend& inner) : in_(inner) {}
  int64_t captures() const { return captures_; }
  int64_t replays() const { return replays_; }

  DeviceKind device() const override { return in_.device(); }
  std::string name() const override { return in_.name(); }
  Tensor empty(const Shape& shape, DType dtype) override { return in_.empty(shape, dtype); }
  void copy_from_host(Tensor& dst, const void* src) override { in_.copy_from_host(dst, src); }
  void copy_to_host(const Tensor& src, void* dst) override { in_.copy_to_host(src, dst); }
  void fill(Tensor& t, double value) override { in_.fill(t, value); }
  void synchronize() override { in_.synchronize(); }
  void gemm(bool ta, bool tb, double alpha, const Tensor& a, const Tensor& b, double beta,
            Tensor& c) override {
    in_.gemm(ta, tb, alpha, a, b, beta, c);
  }
  void add_row_bias(Tensor& y, const Tensor& bias) override { in_.add_row_bias(y, bias); }
  void update_bias(Tensor& bias, const Tensor& dy, double decay, double step) override {
    in_.update_bias(bias, dy, decay, step);
  }
  void gather_rows_scaled(const Tensor& w, const Tensor& index, const Tensor& scale,
                          Tensor& out) override {
    in_.gather_rows_scaled(w, index, scale, out);
  }
  void gather_rows_scaled_gated(const Tensor& w, const Tensor& index, const Tensor& scale,
                                const Tensor& y, Tensor& out) override {
    in_.gather_rows_scaled_gated(w, index, scale, y, out);
  }
  void scatter_update_rows(Tensor& w, const Tensor& index, const Tensor& scale, const Tensor& x,
                           double decay, double step) override {
    in_.scatter_update_rows(w, index, scale, x, decay, step);
  }
  void scatter_update_bias(Tensor& bias, const Tensor& index, const Tensor& scale, double decay,
                           double step) override {
    in_.scatter_update_bias(bias, index, scale, decay, step);
  }
  void relu_forward(const Tensor& x, Tensor& y) override { in_.relu_forward(x, y); }
  void relu_feedback(const Tensor& dy, const Tensor& y, Tensor& dx) override {
    in_.relu_feedback(dy, y, dx);
  }
  void brainprop_head(const Tensor& logits, const Tensor& labels, const BrainPropHeadArgs& args,
                      Tensor& action, Tensor& err, Tensor& stats) override {
    in_.brainprop_head(logits, labels, args, action, err, stats);
  }
  void reinforce_head(const Tensor& logits, const Tensor& labels, const ReinforceHeadArgs& args,
                      Tensor& baseline, Tensor& grad, Tensor& stats) override {
    in_.reinforce_head(logits, labels, args, baseline, grad, stats);
  }
  void softmax_xent_head(const Tensor& logits, const Tensor& labels, Tensor& grad,
                         Tensor& stats) override {
    in_.softmax_xent_head(logits, labels, grad, stats);
  }
  void count_correct(const Tensor& logits, const Tensor& labels, Tensor& stats) override {
    in_.count_correct(logits, labels, stats);
  }
  void conv2d_forward(const Tensor& x, const Tensor& w, Tensor& y, const Conv2dGeometry& g) override {
    in_.conv2d_forward(x, w, y, g);
  }
  void conv2d_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx,
                            const Conv2dGeometry& g) override {
    in_.conv2d_backward_data(dy, w, dx, g);
  }
  void conv2d_update(Tensor& w, const Tensor& dy, const Tensor& x, const Conv2dGeometry& g,
                     double decay, double step) override {
    in_.conv2d_update(w, dy, x, g, decay, step);
  }
  void local2d_forward(const Tensor& x, const Tensor& w, Tensor& y, const Conv2dGeometry& g) override {
    in_.local2d_forward(x, w, y, g);
  }
  void local2d_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx,
                             const Conv2dGeometry& g) override {
    in_.local2d_backward_data(dy, w, dx, g);
  }
  void local2d_update(Tensor& w, const Tensor& dy, const Tensor& x, const Conv2dGeometry& g,
                      double decay, double step) override {
    in_.local2d_update(w, dy, x, g, decay, step);
  }
  void batchnorm_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& y,
                               Tensor& saved_mean, Tensor& saved_inv_std, Tensor& running_mean,
                               Tensor& running_var, double momentum, double epsilon) override {
    in_.batchnorm_forward_train(x, gamma, beta, y, saved_mean, saved_inv_std, running_mean,
                                running_var, momentum, epsilon);
  }
  void batchnorm_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                              const Tensor& running_mean, const Tensor& running_var,
                              double epsilon, Tensor& y) override {
    in_.batchnorm_forward_eval(x, gamma, beta, running_mean, running_var, epsilon, y);
  }
  void batchnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& saved_mean,
                          const Tensor& saved_inv_std, Tensor& gamma, Tensor& beta, Tensor* dx,
                          double decay, double step) override {
    in_.batchnorm_backward(dy, x, saved_mean, saved_inv_std, gamma, beta, dx, decay, step);
  }
  void maxpool2d_forward(const Tensor& x, Tensor& y, const Pool2dGeometry& g) override {
    in_.maxpool2d_forward(x, y, g);
  }
  void maxpool2d_backward(const Tensor& dy, const Tensor& x, Tensor& dx,
                          const Pool2dGeometry& g) override {
    in_.maxpool2d_backward(dy, x, dx, g);
  }
  void dropout_apply(const Tensor& x, Tensor& y, float rate, uint64_t seed, uint64_t step,
                     uint32_t layer) override {
    in_.dropout_apply(x, y, rate, seed, step, layer);
  }
  void gather_batch(const Tensor& images, const Tensor& labels, const Tensor& order, int64_t first,
                    Tensor& x, Tensor& y) override {
    in_.gather_batch(images, labels, order, first, x, y);
  }
  void seeded_permutation(Tensor& order, uint64_t seed, RngStream stream, uint32_t round) override {
    in_.seeded_permutation(order, seed, stream, round);
  }
  int64_t timing_mark() override { return in_.timing_mark(); }
  double timing_elapsed_ms(int64_t from, int64_t to) override {
    return in_.timing_elapsed_ms(from, to);
  }
  void timing_reset() override { in_.timing_reset(); }

  std::unique_ptr<StepGraph> capture_step(const std::function<void()>& body) override {
    std::unique_ptr<StepGraph> graph = in_.capture_step(body);
    if (!graph) return nullptr;
    ++captures_;
    return std::make_unique<Counted>(std::move(graph), replays_);
  }

 private:
  class Counted : public StepGraph {
   public:
    Counted(std::unique_ptr<StepGraph> graph, int64_t& replays)
        : graph_(std::move(graph)), replays_(replays) {}
    void replay(int64_t batches_ahead, int64_t steps_ahead) override {
      graph_->replay(batches_ahead, steps_ahead);
      ++replays_;
    }

   private:
    std::unique_ptr<StepGraph> graph_;
    int64_t& replays_;
  };

  Backend& in_;
  int64_t captures_ = 0, replays_ = 0;
};

ModelSpec small_conv_net() {
  LayerSpec conv;
  conv.type = "conv2d";
  conv.filters = 8;
  conv.padding = "same";
  conv.bias = true;
  conv.init_std = 0.1;
  LayerSpec bn;
  bn.type = "batchnorm";
  LayerSpec pool;
  pool.type = "maxpool2d";
  LayerSpec drop;
  drop.type = "dropout";
  drop.rate = 0.2;
  ModelSpec spec;
  spec.name = "small_conv_graphs";
  spec.layers = {conv, {"relu"}, bn, pool, drop, {"flatten"}, {"dense", 64, true, 0.05, 1e-4},
                 {"relu"}, drop};
  spec.output = {"dense", 0, true, 0.05, 0};
  return spec;
}

constexpr int kEpochs = 4;

TrainConfig config(Rule rule) {
  TrainConfig c;
  c.data_spec = "fashion-mnist";
  c.model_source = "small_conv_graphs";
  c.model = small_conv_net();
  c.rule = rule;
  c.batch_size = 64;  // 15 full batches an epoch and a partial one of 40 (the plain path)
  c.lr = 0.05;
  c.lr_decay_every = 2;  // lr halves at epoch 3: the step graph is recorded anew
  c.lr_decay_factor = 0.5;
  c.epsilon = 0.1;  // a tenth of the actions drawn: they depend on the replayed Philox step
  c.max_epochs = kEpochs;
  c.seed = 7;
  c.val = "test";
  c.train_limit = 1000;
  c.test_limit = 1000;
  c.eval_batch = 384;  // evaluation in 3 batches, the last one partial
  c.progress = false;
  c.threads = 2;
  return c;
}

struct TrainerRun {
  TrainResult result;
  std::vector<SafetensorBytes> weights;  // last.safetensors, in file order
  int64_t captures = 0, replays = 0;
  double seconds = 0;
};

std::string describe(const std::vector<EpochRecord>& h) {
  std::ostringstream out;
  for (const EpochRecord& r : h)
    out << "\n  epoch " << r.epoch << " lr " << r.lr << " loss " << r.train_loss << " acc "
        << r.train_accuracy << " val " << r.val_accuracy << " reward " << r.reward_rate
        << " explore " << r.exploration_rate;
  return out.str();
}

class GpuTrainerGraphs : public GpuParity {
 protected:
  void SetUp() override {
    GpuParity::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    try {
      data_ = load_dataset("fashion-mnist", DataLimits{1000, 1000});
    } catch (const Error& e) {
      BP_GPU_SKIP("Fashion-MNIST is not installed: " << e.what());
    }
  }

  // One train() call on `be` (counted), reading back last.safetensors when there is an out_dir.
  TrainerRun train_on(Backend& be, const TrainConfig& c, bool resume = false) {
    CountingBackend counted(be);
    TrainerRun r;
    const auto t0 = std::chrono::steady_clock::now();
    r.result = train(c, data_, counted, nullptr, resume ? RunStart::Resume : RunStart::New);
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.captures = counted.captures();
    r.replays = counted.replays();
    if (!c.out_dir.empty()) r.weights = read_weights(c.out_dir);
    std::printf("[   run    ] %s %s graphs %d%s: %d epochs, %lld captures, %lld replays, %.1f s\n",
                be.name().c_str(), rule_name(c.rule), int(c.graphs), resume ? " (resumed)" : "",
                int(r.result.history.size()), static_cast<long long>(r.captures),
                static_cast<long long>(r.replays), r.seconds);
    std::printf("%s\n", describe(r.result.history).c_str() + 1);
    return r;
  }

  static std::vector<SafetensorBytes> read_weights(const std::string& dir) {
    const SafetensorsFile f = load_safetensors((fs::path(dir) / "last.safetensors").string());
    std::vector<SafetensorBytes> out;
    for (const auto& t : f.tensors) out.push_back({t.name, t.bytes});
    return out;
  }

  // Every history field and the summary equal within rel (0: exactly); timings aside.
  static void expect_same_history(const TrainResult& want, const TrainResult& got, double rel,
                                  const std::string& what) {
    ASSERT_EQ(want.history.size(), got.history.size()) << what;
    const std::string both = what + "; want" + describe(want.history) + "\n got" + describe(got.history);
    auto near = [&](double a, double b, const char* field, size_t e) {
      if (rel == 0)
        EXPECT_EQ(a, b) << field << " epoch " << e + 1 << ": " << both;
      else
        EXPECT_NEAR(a, b, rel * std::abs(a)) << field << " epoch " << e + 1 << ": " << both;
    };
    for (size_t e = 0; e < want.history.size(); ++e) {
      const EpochRecord &a = want.history[e], &b = got.history[e];
      EXPECT_EQ(a.epoch, b.epoch) << both;
      EXPECT_EQ(a.lr, b.lr) << both;
      near(a.train_loss, b.train_loss, "train_loss", e);
      near(a.train_accuracy, b.train_accuracy, "train_accuracy", e);
      near(a.val_accuracy, b.val_accuracy, "val_accuracy", e);
      near(a.reward_rate, b.reward_rate, "reward_rate", e);
      near(a.exploration_rate, b.exploration_rate, "exploration_rate", e);
    }
    EXPECT_EQ(want.summary.best_epoch, got.summary.best_epoch) << both;
    // -1: not measured (nullopt), which must then hold for both.
    near(want.summary.best_val_accuracy.value_or(-1), got.summary.best_val_accuracy.value_or(-1),
         "best_val_accuracy", 0);
    near(want.summary.test_accuracy.value_or(-1), got.summary.test_accuracy.value_or(-1),
         "test_accuracy", 0);
    EXPECT_EQ(want.summary.stop_reason, got.summary.stop_reason) << both;
    EXPECT_EQ(want.summary.epochs_run, got.summary.epochs_run) << both;
  }

  static void expect_same_weights(const std::vector<SafetensorBytes>& want,
                                  const std::vector<SafetensorBytes>& got, const std::string& what) {
    ASSERT_EQ(want.size(), got.size()) << what;
    ASSERT_FALSE(want.empty()) << what;
    for (size_t i = 0; i < want.size(); ++i) {
      ASSERT_EQ(want[i].name, got[i].name) << what;
      ASSERT_EQ(want[i].bytes.size(), got[i].bytes.size()) << what << " " << want[i].name;
      size_t differ = 0;
      for (size_t k = 0; k < want[i].bytes.size(); ++k) differ += want[i].bytes[k] != got[i].bytes[k];
      EXPECT_EQ(differ, 0u) << what << ": " << want[i].name << ": " << differ << " of "
                            << want[i].bytes.size() << " bytes differ";
    }
  }

  // The replays a 4-epoch run with graphs must have made: per epoch 15 full batches, of which
  // the first of the run is the plain warm-up and the first after each lr change is recorded
  // (it runs by its own replay); the partial batch runs plainly.
  static void expect_replayed(const TrainerRun& r, int epochs, const std::string& what) {
    EXPECT_GE(r.captures, 1) << what << ": no step graph was recorded";
    EXPECT_GE(r.replays, int64_t(epochs) * 15 - 2) << what << ": too few steps replayed";
  }

  void check_resumed_run_equals_the_uninterrupted_one(Rule rule) {
    const TestDir tmp;
    TrainConfig c = config(rule);
    c.out_dir = tmp.sub("whole");
    const TrainerRun whole = train_on(*gpu_, c);
    expect_replayed(whole, kEpochs, "uninterrupted GPU run");

    TrainConfig cut = c;
    cut.out_dir = tmp.sub("cut");
    cut.max_epochs = 2;
    const TrainerRun first = train_on(*gpu_, cut);
    ASSERT_EQ(first.result.history.size(), 2u);
    EXPECT_EQ(first.result.summary.stop_reason, "max_epochs");
    cut.max_epochs = kEpochs;
    cut.halt_after_steps = 2 * 16 + 7;  // 16 steps an epoch: stops after 7 batches of epoch 3
    const TrainerRun second = train_on(*gpu_, cut, true);
    EXPECT_EQ(second.result.summary.stop_reason, "interrupted");
    ASSERT_EQ(second.result.history.size(), 2u) << "the first two epochs, read back";
    cut.halt_after_steps = -1;
    const TrainerRun resumed = train_on(*gpu_, cut, true);
    EXPECT_GE(resumed.replays, 8) << "the resumed run replayed no graphs";

    expect_same_history(whole.result, resumed.result, 0.0, "resumed vs uninterrupted");
    expect_same_weights(whole.weights, resumed.weights, "resumed vs uninterrupted: final weights");
  }

  Dataset data_;
};

// (a) and (b): graphs against plain steps on the GPU, and the GPU against the CPU.
TEST_F(GpuTrainerGraphs, BrainPropGraphsEqualPlainStepsAndMatchTheCpu) {
  const TestDir tmp;
  TrainConfig c = config(Rule::BrainProp);
  c.graphs = true;
  c.out_dir = tmp.sub("graphs");
  const TrainerRun graphed = train_on(*gpu_, c);
  c.graphs = false;
  c.out_dir = tmp.sub("plain");
  const TrainerRun plain = train_on(*gpu_, c);
  expect_replayed(graphed, kEpochs, "GPU with graphs");
  EXPECT_EQ(plain.captures, 0);
  EXPECT_EQ(plain.replays, 0);
  // (a) The same kernels with the same arguments, replayed or launched one by one: equal bit
  // for bit on the emulator and in practice on a GPU. 1e-6 relative leaves room only for a
  // library choosing another kernel inside a capture; a wrong batch offset or a frozen Philox
  // step changes the losses and rates at the 1e-3 level or more. The weights: bit-identical.
  expect_same_history(plain.result, graphed.result, 1e-6, "GPU graphs vs plain");
  expect_same_weights(plain.weights, graphed.weights, "GPU graphs vs plain: final weights");

  // (b) The CPU run from the same seed: identical initial weights (drawn on the host), epoch
  // orders, dropout masks and Philox draws; they differ only by float rounding in GEMMs and
  // convolutions, and through it by a BrainProp action or ReLU gate that rounding flips, which
  // then moves the trajectories apart slowly. Tolerances (absolute, on rates of 1000 samples):
  //  - epoch 1 train_loss within 1e-3 relative (before any flip it agrees to ~1e-6; measured
  //    on the emulator: equal to 6 digits, and by epoch 4 the loss is 0.6% and the validation
  //    accuracy 0.003 apart);
  //  - train/val accuracy and reward rate within 0.02 in every epoch (20 of 1000 images);
  //  - exploration rate within 0.01 (it is ~epsilon * (1 - p_greedy), ~0.09, set by the draws).
  // A wrong update rule, padding side or feedback path moves these by 0.05-0.5 within an epoch.
  c.graphs = true;
  c.out_dir.clear();
  auto cpu2 = make_cpu_backend(2);
  const TrainerRun on_cpu = train_on(*cpu2, c);
  const std::string what = "GPU vs CPU; cpu" + describe(on_cpu.result.history) + "\n gpu" +
                           describe(graphed.result.history);
  ASSERT_EQ(on_cpu.result.history.size(), size_t(kEpochs)) << what;
  ASSERT_EQ(graphed.result.history.size(), size_t(kEpochs)) << what;
  EXPECT_NEAR(graphed.result.history[0].train_loss, on_cpu.result.history[0].train_loss,
              1e-3 * on_cpu.result.history[0].train_loss)
      << what;
  for (size_t e = 0; e < size_t(kEpochs); ++e) {
    const EpochRecord &a = on_cpu.result.history[e], &b = graphed.result.history[e];
    EXPECT_EQ(a.lr, b.lr) << what;
    EXPECT_NEAR(b.train_accuracy, a.train_accuracy, 0.02) << "epoch " << e + 1 << what;
    EXPECT_NEAR(b.val_accuracy, a.val_accuracy, 0.02) << "epoch " << e + 1 << what;
    EXPECT_NEAR(b.reward_rate, a.reward_rate, 0.02) << "epoch " << e + 1 << what;
    EXPECT_NEAR(b.exploration_rate, a.exploration_rate, 0.01) << "epoch " << e + 1 << what;
  }
  ASSERT_TRUE(graphed.result.summary.test_accuracy && on_cpu.result.summary.test_accuracy) << what;
  EXPECT_NEAR(*graphed.result.summary.test_accuracy, *on_cpu.result.summary.test_accuracy, 0.02)
      << what;
  // And it learns (chance is 0.10; both reach ~0.40): not a comparison of two untrained nets.
  EXPECT_GT(graphed.result.history.back().val_accuracy, 0.3) << what;
}

// (c) Stopped after 2 epochs, resumed to 4 (interrupted once more inside epoch 3 and resumed
// again): the same history and final weights as the uninterrupted GPU run, bit for bit. Each
// restart builds a new net and runner, so the first full batch after it runs plainly and the
// next is recorded at a new batch offset and step; the epoch order, dropout masks and actions
// follow from (seed, epoch, step) alone.
TEST_F(GpuTrainerGraphs, BrainPropResumedRunEqualsTheUninterruptedOne) {
  check_resumed_run_equals_the_uninterrupted_one(Rule::BrainProp);
}
// The same for REINFORCE: its baseline lives on the device, moves inside the replayed graphs
// and goes through the checkpoint.
TEST_F(GpuTrainerGraphs, ReinforceResumedRunEqualsTheUninterruptedOne) {
  check_resumed_run_equals_the_uninterrupted_one(Rule::Reinforce);
}

// (a) for EBP (softmax cross-entropy, the dense feedback through every layer): graphs change
// nothing either.
TEST_F(GpuTrainerGraphs, EbpGraphsEqualPlainSteps) {
  const TestDir tmp;
  TrainConfig c = config(Rule::Ebp);
  c.max_epochs = 3;  // still crosses the lr change at epoch 3
  c.out_dir = tmp.sub("graphs");
  const TrainerRun graphed = train_on(*gpu_, c);
  c.graphs = false;
  c.out_dir = tmp.sub("plain");
  const TrainerRun plain = train_on(*gpu_, c);
  expect_replayed(graphed, 3, "EBP with graphs");
  EXPECT_EQ(plain.replays, 0);
  // As the BrainProp case: 1e-6 relative, weights bit for bit.
  expect_same_history(plain.result, graphed.result, 1e-6, "EBP graphs vs plain");
  expect_same_weights(plain.weights, graphed.weights, "EBP graphs vs plain: final weights");
}

}  // namespace
}  // namespace bp::test
