// Whole training on the GPU against the CPU: one TrainingStep of each rule on the dense and
// conv nets (same actions, same weights to float rounding), also with fa/learned/dfa feedback; StepRunner with CUDA graphs
// against plain launches (graph replay with moving batch offset and step must change
// nothing); and a short Fashion-MNIST run on both backends reaching the same accuracy.
#include <iostream>
#include <sstream>
#include <string>
#include <utility>

#include "data/dataset.h"
#include "gpu_parity.h"
#include "model/model_spec.h"
#include "model/net.h"
#include "train/device_data.h"
#include "train/step_runner.h"
#include "train/trainer.h"
#include "train/training_step.h"
#include "train/update_probe.h"

namespace bp::test {
namespace {

using NamedValues = std::vector<std::pair<std::string, std::vector<float>>>;

// Every parameter and buffer (batch-norm moving averages) of a float32 net, on the host.
NamedValues read_state(Net& net) {
  NamedValues out;
  for (const NamedParam& p : net.state_tensors()) {
    std::vector<float> v(size_t(p.tensor->numel()));
    net.backend().copy_to_host(*p.tensor, v.data());
    out.emplace_back(p.name, std::move(v));
  }
  return out;
}

bool have_cudnn() {
#ifdef BRAINPROP_HAVE_CUDNN
  return true;
#else
  return false;
#endif
}

// The change a step made to one tensor: the GPU's must match the CPU's within 2% rms (see
// GpuTrainingStep::compare). Elements off by more than 1e-4 relative (1e-3 floor) are printed.
void expect_same_update(const std::vector<float>& before, const std::vector<float>& cpu,
                        const std::vector<float>& gpu, const std::string& what) {
  ASSERT_EQ(before.size(), cpu.size()) << what;
  ASSERT_EQ(cpu.size(), gpu.size()) << what;
  double update = 0, diff = 0;
  int64_t beyond = 0, nans = 0;
  for (size_t i = 0; i < cpu.size(); ++i) {
    const double u = double(cpu[i]) - double(before[i]), d = double(gpu[i]) - double(cpu[i]);
    if (std::isnan(gpu[i])) ++nans;
    update += u * u;
    diff += d * d;
    if (std::abs(d) > 1e-4 * std::max(std::abs(double(cpu[i])), 1e-3)) ++beyond;
  }
  const double n = double(std::max<size_t>(cpu.size(), 1));
  const double rms_update = std::sqrt(update / n), rms_diff = std::sqrt(diff / n);
  EXPECT_EQ(nans, 0) << what;
  EXPECT_LE(rms_diff, 0.02 * rms_update + 1e-12)
      << what << ": the GPU's update differs from the CPU's by " << rms_diff << " rms, the update is "
      << rms_update << " rms";
  if (beyond > 0)
    std::cout << "note: " << what << ": " << beyond << " of " << cpu.size()
              << " elements beyond 1e-4 relative (update rms " << rms_update << ", difference rms "
              << rms_diff << "): a ReLU gate flipped by rounding?\n";
}

const Shape kInput{28, 28, 1};
constexpr int kClasses = 10;

class GpuTrainingStep : public GpuParity {
 protected:
  // Two steps of `rule` on the same synthetic batch from the same seed on both backends: the
  // BrainProp actions must be identical, the errors and statistics equal to float rounding,
  // and every parameter's change the same (see below for why as a whole tensor).
  void compare(const std::string& model, Rule rule, Feedback feedback = Feedback::Symmetric,
               double feedback_decay = 0) {
    const std::string what = model + " " + rule_name(rule) + " " + feedback_name(feedback);
    ModelSpec spec = load_model(model);
    spec.feedback = feedback;
    spec.feedback_decay = feedback_decay;
    const int batch = 32;
    const uint64_t seed = 17;
    Net cnet(spec, kInput, kClasses, *cpu_, batch, DType::F32, seed);
    Net gnet(spec, kInput, kClasses, *gpu_, batch, DType::F32, seed);
    // Initialisation is drawn on the host: bit-identical to begin with.
    const NamedValues c0 = read_state(cnet), g0 = read_state(gnet);
    ASSERT_EQ(c0.size(), g0.size());
    for (size_t i = 0; i < c0.size(); ++i)
      expect_equal_values(c0[i].second, g0[i].second, what + " initial " + c0[i].first);
    // Exploration 0.3 so that a good part of the actions come from the Philox draws.
    TrainingStep cstep(cnet, rule, 0.3, seed), gstep(gnet, rule, 0.3, seed);
    auto [cx, gx] = both({batch, 28, 28, 1}, random_floats(batch * 28 * 28, 5, 0.f, 1.f));
    auto [cy, gy] = both({batch}, random_ints(batch, 6, 0, kClasses));
    auto [cs, gs] = both({kStatCount}, std::vector<double>(kStatCount, 0.0));
    for (uint64_t step = 5; step < 7; ++step) {
      const std::string at = what + " step " + std::to_string(step);
      cstep.run(cx, cy, 0.1, step, cs);
      gstep.run(gx, gy, 0.1, step, gs);
      if (rule == Rule::BrainProp) {
        // Exactly the same actions: the Philox draws are shared and the logits agree far
        // closer than the gaps between them.
        expect_equal_values(host<int32_t>(*cpu_, cstep.actions()),
                            host<int32_t>(*gpu_, gstep.actions()), at + " actions");
        // err = a[s] - r: the logits' rounding differences (~1e-6 relative after a few
        // layers); 1e-4 relative with a 1e-3 floor (the dense net's logits are ~1e-3).
        expect_close(cstep.errors(), gstep.errors(), 1e-4, 1e-3, at + " errors");
      }
    }
    // Every parameter and batch-norm average after the two in-place updates, compared as
    // the change it made: rms(gpu - cpu) within 2% of rms(cpu - initial).
    // Why not 1e-4 per element: a ReLU input within rounding of 0 (a conv layer has ~10^6 of
    // them per step, each with ~1e-7 relative rounding) can gate differently on the two
    // backends, and that one flipped unit moves the conv weight updates by ~0.6% rms and up to
    // ~8% of the 1e-3 floor in single elements (measured with the CPU run in float64 against
    // float32). Without a flip the updates agree to ~1e-5; a wrong padding side, feedback path
    // or update rule is off by tens of percent. Elements beyond 1e-4 are reported, not failed.
    const NamedValues c1 = read_state(cnet), g1 = read_state(gnet);
    ASSERT_EQ(c1.size(), g1.size());
    for (size_t i = 0; i < c1.size(); ++i) {
      ASSERT_EQ(c1[i].first, g1[i].first);
      expect_same_update(c0[i].second, c1[i].second, g1[i].second, what + " " + c1[i].first);
    }
    const std::vector<double> sc = host<double>(*cpu_, cs), sg = host<double>(*gpu_, gs);
    // REINFORCE's loss sums terms of both signs (near 0): an absolute floor besides 1e-4 relative.
    EXPECT_NEAR(sg[kStatLoss], sc[kStatLoss], 1e-4 * std::abs(sc[kStatLoss]) + 1e-6) << what;
    // REINFORCE's baseline moved by the same reward counts: the same double on both.
    if (rule == Rule::Reinforce) EXPECT_EQ(gstep.baseline(), cstep.baseline()) << what;
    EXPECT_EQ(sg[kStatCorrect], sc[kStatCorrect]) << what;
    EXPECT_EQ(sg[kStatReward], sc[kStatReward]) << what;
    EXPECT_EQ(sg[kStatExplored], sc[kStatExplored]) << what;
    EXPECT_EQ(sg[kStatSamples], sc[kStatSamples]) << what;
    EXPECT_EQ(sg[kStatSamples], 2.0 * batch) << what;
  }
};

TEST_F(GpuTrainingStep, DenseBrainProp) { compare("dense", Rule::BrainProp); }
TEST_F(GpuTrainingStep, DenseEbp) { compare("dense", Rule::Ebp); }
TEST_F(GpuTrainingStep, DenseReinforce) { compare("dense", Rule::Reinforce); }
TEST_F(GpuTrainingStep, LocconReinforce) { compare("loccon", Rule::Reinforce); }

TEST_F(GpuTrainingStep, ConvBrainProp) {
  if (!have_cudnn()) BP_GPU_SKIP("this build has no cuDNN: conv2d cannot run on the GPU");
  compare("conv", Rule::BrainProp);
}
TEST_F(GpuTrainingStep, ConvEbp) {
  if (!have_cudnn()) BP_GPU_SKIP("this build has no cuDNN: conv2d cannot run on the GPU");
  compare("conv", Rule::Ebp);
}

TEST_F(GpuTrainingStep, LocconBrainProp) { compare("loccon", Rule::BrainProp); }

// Feedback through B (docs/design.md "Feedback pathways"): the same ops with B in W's place, so
// the same tolerance. fa's B never changes (its "update" must be exactly zero on both backends);
// learned's B takes W's update. Dense and loccon (local2d, dense) need no cuDNN.
TEST_F(GpuTrainingStep, DenseFaBrainProp) { compare("dense", Rule::BrainProp, Feedback::Fa); }
TEST_F(GpuTrainingStep, DenseLearnedEbp) { compare("dense", Rule::Ebp, Feedback::Learned, 0.01); }
TEST_F(GpuTrainingStep, LocconFaEbp) { compare("loccon", Rule::Ebp, Feedback::Fa); }
TEST_F(GpuTrainingStep, LocconLearnedBrainProp) {
  compare("loccon", Rule::BrainProp, Feedback::Learned, 0.01);
}
// Direct feedback alignment: D's injection is a GEMM (EBP) or a row gather, gated or not
// (BrainProp), then the layers' own backward; D never changes. Both rules on both nets.
TEST_F(GpuTrainingStep, DenseDfaEbp) { compare("dense", Rule::Ebp, Feedback::Dfa); }
TEST_F(GpuTrainingStep, DenseDfaBrainProp) { compare("dense", Rule::BrainProp, Feedback::Dfa); }
TEST_F(GpuTrainingStep, LocconDfaEbp) { compare("loccon", Rule::Ebp, Feedback::Dfa); }
TEST_F(GpuTrainingStep, LocconDfaBrainProp) { compare("loccon", Rule::BrainProp, Feedback::Dfa); }
// conv: segments through batch norm and dropout, with cuDNN's convolutions.
TEST_F(GpuTrainingStep, ConvDfaEbp) { compare("conv", Rule::Ebp, Feedback::Dfa); }
TEST_F(GpuTrainingStep, ConvDfaBrainProp) { compare("conv", Rule::BrainProp, Feedback::Dfa); }

// --- StepRunner: CUDA graphs against plain launches ---

// 10 full batches of 32 and a partial one of 5, random pixels and labels.
ImageSet synthetic_images(int64_t count, uint32_t seed) {
  ImageSet set;
  set.count = count;
  set.height = 28;
  set.width = 28;
  set.channels = 1;
  const std::vector<int32_t> pixels = random_ints(count * 28 * 28, seed, 0, 256);
  set.pixels.assign(pixels.begin(), pixels.end());
  set.labels = random_ints(count, seed + 1, 0, kClasses);
  return set;
}

struct RunnerResult {
  NamedValues state;
  std::vector<double> stats;
  int64_t replays = 0;
};

class GpuStepGraphs : public GpuParity {
 protected:
  // Two epochs (shuffled) through a StepRunner, the lr changing after the first (a recapture);
  // the global step starts far from 0 and runs on across epochs, as in the trainer.
  RunnerResult run(const std::string& model, Rule rule, bool graphs) {
    const ImageSet images = synthetic_images(325, 3);
    const int batch = 32;
    Net net(load_model(model), kInput, kClasses, *gpu_, batch, DType::F32, 23);
    TrainingStep step(net, rule, 0.3, 23);  // epsilon 0.3: many actions depend on the step
    DeviceImages data(*gpu_, images);
    BatchLoader loader(*gpu_, data, batch, DType::F32);
    Tensor stats = gpu_->empty({kStatCount}, DType::F64);
    gpu_->fill(stats, 0.0);
    StepRunner runner(*gpu_, loader, step, batch, graphs);
    uint64_t global = 1000;
    for (int epoch = 0; epoch < 2; ++epoch) {
      loader.shuffle(23, epoch);
      for (int64_t b = 0; b < loader.batches(batch); ++b)
        runner.run(b, epoch == 0 ? 0.1 : 0.05, global++, stats);
    }
    RunnerResult r;
    r.state = read_state(net);
    r.stats = host<double>(*gpu_, stats);
    r.replays = runner.replays();
    return r;
  }

  void compare(const std::string& model, Rule rule) {
    const std::string what = model + " " + rule_name(rule);
    const RunnerResult plain = run(model, rule, false);
    const RunnerResult graphed = run(model, rule, true);
    EXPECT_EQ(plain.replays, 0) << what;
    // 22 steps: the warm-up and each epoch's partial batch run plainly, the rest replay.
    EXPECT_GT(graphed.replays, 0) << what << ": no step was replayed from a graph";
    EXPECT_GE(graphed.replays, 15) << what;
    // The same kernels with the same arguments: bit-identical in practice; 1e-6 relative
    // (1e-3 floor, below the init scale) leaves room only for a different GEMM kernel choice.
    // A wrong batch offset, a frozen Philox step or a stale buffer changes weights at the
    // update's scale.
    ASSERT_EQ(plain.state.size(), graphed.state.size());
    for (size_t i = 0; i < plain.state.size(); ++i)
      expect_close_values(plain.state[i].second, graphed.state[i].second, 1e-6, 1e-3,
                          what + " " + plain.state[i].first);
    EXPECT_NEAR(graphed.stats[kStatLoss], plain.stats[kStatLoss],
                1e-6 * std::abs(plain.stats[kStatLoss]))
        << what;
    for (int k : {int(kStatCorrect), int(kStatReward), int(kStatExplored), int(kStatSamples)})
      EXPECT_EQ(graphed.stats[size_t(k)], plain.stats[size_t(k)]) << what << " stat " << k;
    EXPECT_EQ(plain.stats[kStatSamples], 2.0 * 325) << what;
  }
};

TEST_F(GpuStepGraphs, DenseBrainPropReplaysMatchPlainSteps) { compare("dense", Rule::BrainProp); }
TEST_F(GpuStepGraphs, DenseEbpReplaysMatchPlainSteps) { compare("dense", Rule::Ebp); }
TEST_F(GpuStepGraphs, DenseReinforceReplaysMatchPlainSteps) {
  // The head's baseline is device memory read and moved inside the graph, its step replayed.
  compare("dense", Rule::Reinforce);
}
TEST_F(GpuStepGraphs, ConvBrainPropReplaysMatchPlainSteps) {
  // cuDNN, batch norm and dropout (its mask keyed by the replayed step) inside the graph.
  if (!have_cudnn()) BP_GPU_SKIP("this build has no cuDNN: conv2d cannot run on the GPU");
  compare("conv", Rule::BrainProp);
}
TEST_F(GpuStepGraphs, LocconEbpReplaysMatchPlainSteps) {
  // The locally connected kernels, batch norm and dropout inside the graph.
  compare("loccon", Rule::Ebp);
}

// --- a short real run on both backends ---

// --- the update probe (train/update_probe.h): its figures on both backends ---

class GpuUpdateProbe : public GpuParity {
 protected:
  // The same net, probe batch and draws on both backends. The probe's host arithmetic is the
  // same; what differs is the float32 rounding of the backward passes it runs: angles within
  // 0.5 degree, variances and norms within 2% (the same ReLU-flip allowance as the training
  // step above); the net must be left exactly as it was on both.
  void compare(const std::string& model, Rule rule, Feedback feedback) {
    const std::string what = model + " " + rule_name(rule) + " " + feedback_name(feedback);
    ModelSpec spec = load_model(model);
    spec.feedback = feedback;
    const ImageSet images = synthetic_images(40, 9);
    Net cnet(spec, kInput, kClasses, *cpu_, 32, DType::F32, 31);
    Net gnet(spec, kInput, kClasses, *gpu_, 32, DType::F32, 31);
    TrainingStep cstep(cnet, rule, 0.3, 31), gstep(gnet, rule, 0.3, 31);
    DeviceImages cdata(*cpu_, images), gdata(*gpu_, images);
    UpdateProbe cprobe(cnet, cstep, cdata, 8), gprobe(gnet, gstep, gdata, 8);
    const NamedValues g_before = read_state(gnet);
    const ProbeResult c = cprobe.measure(1), g = gprobe.measure(1);
    const NamedValues g_after = read_state(gnet);
    for (size_t i = 0; i < g_before.size(); ++i)
      expect_equal_values(g_before[i].second, g_after[i].second, what + " left " + g_before[i].first);
    ASSERT_EQ(c.layers.size(), g.layers.size()) << what;
    auto near = [&](const std::optional<double>& cv, const std::optional<double>& gv, double tol,
                    const std::string& figure) {
      ASSERT_EQ(cv.has_value(), gv.has_value()) << figure;
      if (cv) EXPECT_NEAR(*gv, *cv, tol) << figure;
    };
    for (size_t i = 0; i < c.layers.size(); ++i) {
      const std::string at = what + " " + c.layers[i].layer;
      ASSERT_EQ(c.layers[i].layer, g.layers[i].layer);
      near(c.layers[i].update_angle, g.layers[i].update_angle, 0.5, at + " update angle");
      near(c.layers[i].feedback_angle, g.layers[i].feedback_angle, 1e-3, at + " W-B angle");
      if (c.layers[i].update_variance)
        near(c.layers[i].update_variance, g.layers[i].update_variance,
             0.02 * *c.layers[i].update_variance, at + " variance");
      if (c.layers[i].sampling_variance)
        near(c.layers[i].sampling_variance, g.layers[i].sampling_variance,
             0.02 * *c.layers[i].sampling_variance + 1e-9, at + " sampling variance");
      EXPECT_NEAR(g.layers[i].update_norm, c.layers[i].update_norm, 0.02 * c.layers[i].update_norm) << at;
    }
  }
};

TEST_F(GpuUpdateProbe, DenseFaBrainProp) { compare("dense", Rule::BrainProp, Feedback::Fa); }
TEST_F(GpuUpdateProbe, LocconLearnedEbp) { compare("loccon", Rule::Ebp, Feedback::Learned); }

TEST_F(GpuParity, FashionMnistTwoEpochsMatchTheCpu) {
  Dataset data;
  try {
    data = load_dataset("fashion-mnist", DataLimits{10000, 2000});
  } catch (const Error& e) {
    BP_GPU_SKIP("Fashion-MNIST is not installed: " << e.what());
  }
  auto cpu2 = make_cpu_backend(2);
  for (Rule rule : {Rule::Ebp, Rule::BrainProp}) {
    TrainConfig c;
    c.model_source = "dense";
    c.model = load_model("dense");
    c.rule = rule;
    // Batch 32 (626 steps) rather than the model's 128: with 128, two epochs leave the dense
    // net's BrainProp at chance (0.10 val on both backends, a vacuous comparison). At 32 the
    // CPU reaches ~0.74 (EBP) and ~0.21 (BrainProp), and perturbing lr by 1e-6 (a stand-in for
    // the GPU's rounding differences) moves those by <= 0.001.
    c.batch_size = 32;
    c.lr = 0.1;
    c.train_limit = 10000;
    c.test_limit = 2000;
    c.val = "test";
    c.max_epochs = 2;
    c.progress = false;
    c.out_dir.clear();
    c.threads = 2;
    const TrainResult on_cpu = train(c, data, *cpu2, nullptr);
    const TrainResult on_gpu = train(c, data, *gpu_, nullptr);  // with CUDA graphs (the default)
    ASSERT_EQ(on_cpu.history.size(), 2u) << rule_name(rule);
    ASSERT_EQ(on_gpu.history.size(), 2u) << rule_name(rule);
    std::ostringstream log;
    for (size_t e = 0; e < 2; ++e)
      log << " epoch " << e + 1 << ": cpu val " << on_cpu.history[e].val_accuracy << " loss "
          << on_cpu.history[e].train_loss << ", gpu val " << on_gpu.history[e].val_accuracy
          << " loss " << on_gpu.history[e].train_loss << ";";
    const std::string what = std::string(rule_name(rule)) + log.str();
    // The runs start identical and drift apart only by float rounding (and, for BrainProp, any
    // action that rounding flips): final accuracies on the 2000 test images within 0.01, the
    // first epoch's mean training loss within 1% (a rounding perturbation moves it ~1e-5).
    EXPECT_NEAR(on_gpu.history.back().val_accuracy, on_cpu.history.back().val_accuracy, 0.01)
        << what;
    ASSERT_TRUE(on_gpu.summary.test_accuracy && on_cpu.summary.test_accuracy) << what;
    EXPECT_NEAR(*on_gpu.summary.test_accuracy, *on_cpu.summary.test_accuracy, 0.01) << what;
    EXPECT_NEAR(on_gpu.history[0].train_loss, on_cpu.history[0].train_loss,
                0.01 * on_cpu.history[0].train_loss)
        << what;
    // And both really learn (chance is 0.10).
    EXPECT_GT(on_gpu.history.back().val_accuracy, rule == Rule::Ebp ? 0.6 : 0.15) << what;
  }
}

}  // namespace
}  // namespace bp::test
