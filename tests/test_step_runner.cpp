// StepRunner's graph path, checked on the CPU: a test backend records a step's closure as its
// "graph" and replays it with the per-step arguments moved exactly as the CUDA backend's
// replay offsets move them (gather_batch's first by batches_ahead * rows, the Philox step by
// steps_ahead). Training through replays must then equal plain training bit for bit, which
// pins down the runner's capture/replay bookkeeping and the offset contract the GPU follows.
#include <gtest/gtest.h>

#include <random>

#include "model/net.h"
#include "train/device_data.h"
#include "train/step_runner.h"
#include "train/trainer.h"
#include "train/training_step.h"

namespace bp {
namespace {

class ReplayingBackend final : public Backend {
 public:
  explicit ReplayingBackend(std::unique_ptr<Backend> inner) : in_(std::move(inner)) {}
  int captures = 0;
  int64_t replays = 0;

  DeviceKind device() const override { return in_->device(); }
  std::string name() const override { return "replaying " + in_->name(); }
  Tensor empty(const Shape& s, DType d) override { return in_->empty(s, d); }
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
    BrainPropHeadArgs moved = args;
    moved.step = uint64_t(int64_t(args.step) + steps_ahead_);
    in_->brainprop_head(l, y, moved, a, e, st);
  }
  void reinforce_head(const Tensor& l, const Tensor& y, const ReinforceHeadArgs& args, Tensor& base,
                      Tensor& g, Tensor& st) override {
    ReinforceHeadArgs moved = args;
    moved.step = uint64_t(int64_t(args.step) + steps_ahead_);
    in_->reinforce_head(l, y, moved, base, g, st);
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
    in_->dropout_apply(x, y, rate, seed, uint64_t(int64_t(step) + steps_ahead_), layer);
  }
  void gather_batch(const Tensor& im, const Tensor& lab, const Tensor& order, int64_t first, Tensor& x,
                    Tensor& y) override {
    in_->gather_batch(im, lab, order, first + batches_ahead_ * x.dim(0), x, y);
  }
  void seeded_permutation(Tensor& o, uint64_t seed, RngStream s, uint32_t round) override {
    in_->seeded_permutation(o, seed, s, round);
  }

  bool fail_capture = false;

  std::unique_ptr<StepGraph> capture_step(const std::function<void()>& body) override {
    ++captures;
    if (fail_capture) BP_FAIL("capture refused by the test");
    return std::make_unique<Graph>(*this, body);
  }

 private:
  // Capturing records the closure without running it, as a CUDA stream capture does.
  struct Graph final : StepGraph {
    Graph(ReplayingBackend& owner, std::function<void()> body) : be(owner), step(std::move(body)) {}
    void replay(int64_t batches_ahead, int64_t steps_ahead) override {
      be.batches_ahead_ = batches_ahead;
      be.steps_ahead_ = steps_ahead;
      step();
      be.batches_ahead_ = be.steps_ahead_ = 0;
      ++be.replays;
    }
    ReplayingBackend& be;
    std::function<void()> step;
  };

  std::unique_ptr<Backend> in_;
  int64_t batches_ahead_ = 0, steps_ahead_ = 0;
};

ModelSpec dropout_mlp() {
  ModelSpec spec;
  spec.name = "dropout_mlp";
  spec.layers = {{"flatten"}, {"dense", 32, true, 0.1, 0}, {"relu"}};
  LayerSpec drop;
  drop.type = "dropout";
  drop.rate = 0.25;
  spec.layers.push_back(drop);
  spec.output = {"dense", 0, true, 0.1, 0};
  return spec;
}

ImageSet random_images(int64_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  ImageSet set;
  set.count = n;
  set.height = set.width = 6;
  set.channels = 1;
  set.pixels.resize(size_t(n * 36));
  for (auto& p : set.pixels) p = uint8_t(gen() & 0xFF);
  set.labels.resize(size_t(n));
  for (auto& l : set.labels) l = int32_t(gen() % 5);
  return set;
}

// Trains two epochs of 7 batches (the last one partial) with the lr changing after the first
// epoch; returns every parameter's bytes and the stats of the last epoch.
std::vector<std::vector<uint8_t>> train_steps(Backend& be, bool graphs, Rule rule, int64_t* replays) {
  const ImageSet images = random_images(100, 3);
  Net net(dropout_mlp(), {6, 6, 1}, 5, be, 16, DType::F32, 11);
  TrainingStep step(net, rule, 0.3, 11);
  DeviceImages data(be, images);
  BatchLoader loader(be, data, 16, DType::F32);
  Tensor stats = be.empty({kStatCount}, DType::F64);
  be.fill(stats, 0.0);
  StepRunner runner(be, loader, step, 16, graphs);
  uint64_t global = 0;
  for (int epoch = 0; epoch < 2; ++epoch) {
    loader.shuffle(11, epoch);
    for (int64_t b = 0; b < loader.batches(16); ++b) runner.run(b, epoch == 0 ? 0.1 : 0.05, global++, stats);
  }
  *replays = runner.replays();
  std::vector<std::vector<uint8_t>> out;
  for (const NamedParam& p : net.params()) {
    std::vector<uint8_t> bytes(p.tensor->bytes());
    be.copy_to_host(*p.tensor, bytes.data());
    out.push_back(bytes);
  }
  std::vector<uint8_t> s(stats.bytes());
  be.copy_to_host(stats, s.data());
  out.push_back(s);
  return out;
}

TEST(StepRunner, ReplayedStepsEqualPlainStepsBitForBit) {
  for (Rule rule : {Rule::BrainProp, Rule::Ebp, Rule::Reinforce}) {
    auto plain_be = make_cpu_backend(1);
    int64_t plain_replays = -1;
    const auto plain = train_steps(*plain_be, false, rule, &plain_replays);
    EXPECT_EQ(plain_replays, 0);

    ReplayingBackend replaying(make_cpu_backend(1));
    int64_t replays = 0;
    const auto graphed = train_steps(replaying, true, rule, &replays);
    // 14 steps: the first runs plainly (warm-up), each epoch's partial last batch too, the
    // rest replay; the lr change at epoch 2 forces a second capture.
    EXPECT_EQ(replays, 11);
    EXPECT_EQ(replaying.captures, 2);
    ASSERT_EQ(plain.size(), graphed.size());
    for (size_t i = 0; i < plain.size(); ++i)
      EXPECT_EQ(plain[i], graphed[i]) << "tensor " << i << " differs (rule " << rule_name(rule) << ")";
  }
}

TEST(StepRunner, AFailedCaptureFallsBackToPlainSteps) {
  auto plain_be = make_cpu_backend(1);
  int64_t unused = 0;
  const auto plain = train_steps(*plain_be, false, Rule::BrainProp, &unused);
  ReplayingBackend refusing(make_cpu_backend(1));
  refusing.fail_capture = true;
  int64_t replays = -1;
  const auto fallback = train_steps(refusing, true, Rule::BrainProp, &replays);
  EXPECT_EQ(replays, 0);
  EXPECT_EQ(refusing.captures, 1) << "after one failure the runner stops trying";
  EXPECT_EQ(plain, fallback);
}

TEST(StepRunner, BackendsWithoutGraphsRunPlainly) {
  auto be = make_cpu_backend(1);
  int64_t replays = -1;
  train_steps(*be, true, Rule::BrainProp, &replays);
  EXPECT_EQ(replays, 0);
}

}  // namespace
}  // namespace bp
