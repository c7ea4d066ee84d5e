// The update probe (train/update_probe.h): it leaves the net exactly as it was; with symmetric
// feedback (and fa with B = W) the update is the true gradient (angle 0), with a random B it is
// not below the output; the per-sample variance equals the one computed from explicit
// one-image steps, without L2; W-B angles are those of the tensors.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <vector>

#include "model/model_spec.h"
#include "model/net.h"
#include "train/device_data.h"
#include "train/training_step.h"
#include "train/update_probe.h"

namespace bp {
namespace {

constexpr int kH = 6, kW = 5, kC = 2, kClasses = 4, kImages = 10;

ImageSet random_images(uint64_t seed) {
  std::mt19937_64 gen(seed);
  ImageSet set;
  set.count = kImages;
  set.height = kH;
  set.width = kW;
  set.channels = kC;
  set.pixels.resize(size_t(set.count * set.image_elements()));
  for (uint8_t& p : set.pixels) p = uint8_t(gen() % 256);
  for (int i = 0; i < kImages; ++i) set.labels.push_back(int32_t(gen() % kClasses));
  return set;
}

LayerSpec layer(const std::string& type, int units = 0, double l2 = 0) {
  LayerSpec s;
  s.type = type;
  s.units = units;
  s.filters = units;
  s.bias = true;
  s.init_std = 0.4;
  s.l2 = l2;
  s.padding = "same";
  return s;
}

// Every weighted layer type, batch norm and dropout (batch coupling and masks), ReLU under the output.
ModelSpec conv_spec(Feedback feedback) {
  ModelSpec spec;
  spec.name = "probe-conv";
  LayerSpec local = layer("local2d", 2);
  local.kernel_h = local.kernel_w = 2;
  local.stride_h = local.stride_w = 2;
  LayerSpec dropout = layer("dropout");
  dropout.rate = 0.25;
  spec.layers = {layer("conv2d", 3), layer("relu"), layer("batchnorm"), local, layer("relu"),
                 dropout, layer("flatten"), layer("dense", 7), layer("relu")};
  spec.output = layer("dense", 0);
  spec.feedback = feedback;
  return spec;
}

// Dense only (no batch coupling): per-sample updates are one-image steps.
ModelSpec dense_spec(Feedback feedback, double l2) {
  ModelSpec spec;
  spec.name = "probe-dense";
  spec.layers = {layer("flatten"), layer("dense", 9, l2), layer("relu"), layer("dense", 6, l2), layer("relu")};
  spec.output = layer("dense", 0, l2);
  spec.feedback = feedback;
  return spec;
}

struct Fixture {
  std::unique_ptr<Backend> be = make_cpu_backend(1);
  ImageSet images = random_images(7);
  DeviceImages device{*be, images};
  std::unique_ptr<Net> make_net(const ModelSpec& spec) {
    return std::make_unique<Net>(spec, Shape{kH, kW, kC}, kClasses, *be, kImages, DType::F64, 11);
  }
};

const LayerProbe& layer_named(const ProbeResult& r, const std::string& name) {
  for (const LayerProbe& l : r.layers)
    if (l.layer == name) return l;
  ADD_FAILURE() << "no layer " << name;
  return r.net;
}

void copy_weights_into_feedback(Net& net) {
  std::map<std::string, Tensor*> by_name;
  for (const NamedParam& p : net.state_tensors()) by_name[p.name] = p.tensor;
  for (const NamedParam& p : net.state_tensors()) {
    const size_t dot = p.name.find(".feedback");
    if (dot == std::string::npos) continue;
    const Tensor& w = *by_name.at(p.name.substr(0, dot) + ".weight");
    std::vector<double> v(size_t(w.numel()));
    net.backend().copy_to_host(w, v.data());
    net.backend().copy_from_host(*p.tensor, v.data());
  }
}

TEST(UpdateProbe, LeavesTheNetExactlyAsItWas) {
  for (Rule rule : {Rule::BrainProp, Rule::Ebp, Rule::Reinforce}) {
    Fixture f;
    auto net = f.make_net(conv_spec(Feedback::Learned));
    TrainingStep step(*net, rule, 0.3, 5);
    step.set_baseline(0.375);
    UpdateProbe probe(*net, step, f.device, 8);
    const auto before = net->state();
    const ProbeResult r = probe.measure(1);
    EXPECT_EQ(r.probe_size, 8);
    EXPECT_TRUE(net->state() == before) << rule_name(rule);
    EXPECT_EQ(step.baseline(), 0.375) << rule_name(rule) << ": REINFORCE's baseline is left alone";
  }
}

TEST(UpdateProbe, SymmetricFeedbackUpdatesAlongTheTrueGradient) {
  for (Rule rule : {Rule::BrainProp, Rule::Ebp, Rule::Reinforce}) {
    Fixture f;
    auto net = f.make_net(conv_spec(Feedback::Symmetric));
    TrainingStep step(*net, rule, 0.3, 5);
    UpdateProbe probe(*net, step, f.device, 8);
    const ProbeResult r = probe.measure(1);
    ASSERT_EQ(r.layers.size(), 5u);  // conv2d1, batchnorm1, local2d1, dense1, output
    for (const LayerProbe& l : r.layers) {
      ASSERT_TRUE(l.update_angle) << l.layer;
      EXPECT_NEAR(*l.update_angle, 0.0, 1e-5) << rule_name(rule) << " " << l.layer;
      EXPECT_FALSE(l.feedback_angle) << l.layer;
      EXPECT_GT(l.update_norm, 0) << l.layer;
      ASSERT_TRUE(l.update_variance) << l.layer;
      EXPECT_GT(*l.update_variance, 0) << l.layer;
    }
  }
}

TEST(UpdateProbe, FeedbackAlignmentIsTheTrueGradientOnlyWhenBEqualsW) {
  for (Rule rule : {Rule::BrainProp, Rule::Ebp, Rule::Reinforce}) {
    Fixture f;
    auto net = f.make_net(conv_spec(Feedback::Fa));
    TrainingStep step(*net, rule, 0.3, 5);
    UpdateProbe probe(*net, step, f.device, 8);
    const ProbeResult random_b = probe.measure(1);
    // The output layer's own update does not go through any B; every layer below it does.
    EXPECT_NEAR(*layer_named(random_b, "output").update_angle, 0.0, 1e-5) << rule_name(rule);
    for (const char* name : {"conv2d1", "local2d1", "dense1"}) {
      EXPECT_GT(*layer_named(random_b, name).update_angle, 5.0) << rule_name(rule) << " " << name;
      EXPECT_GT(*layer_named(random_b, name).feedback_angle, 45.0) << name;  // random B: near 90
    }
    copy_weights_into_feedback(*net);
    const ProbeResult b_is_w = probe.measure(1);
    for (const LayerProbe& l : b_is_w.layers) {
      EXPECT_NEAR(*l.update_angle, 0.0, 1e-5) << rule_name(rule) << " " << l.layer;
      if (l.layer != "batchnorm1") {
        EXPECT_NEAR(*l.feedback_angle, 0.0, 1e-5) << l.layer;
      }
    }
  }
}

TEST(UpdateProbe, DirectFeedbackAlignmentIsNotTheTrueGradientBelowTheOutput) {
  for (Rule rule : {Rule::BrainProp, Rule::Ebp}) {
    Fixture f;
    auto net = f.make_net(conv_spec(Feedback::Dfa));
    TrainingStep step(*net, rule, 0.3, 5);
    const auto before = net->state();
    const ProbeResult r = UpdateProbe(*net, step, f.device, 8).measure(1);
    EXPECT_TRUE(net->state() == before) << "D and the weights are left as they were";
    EXPECT_NEAR(*layer_named(r, "output").update_angle, 0.0, 1e-5) << rule_name(rule);
    for (const char* name : {"conv2d1", "local2d1", "dense1"}) {
      EXPECT_GT(*layer_named(r, name).update_angle, 5.0) << rule_name(rule) << " " << name;
      EXPECT_FALSE(layer_named(r, name).feedback_angle) << name << ": D is not of W's shape";
    }
  }
}

// The action-sampling spread: none without sampling (EBP), none for greedy BrainProp
// (epsilon 0: every draw picks the same actions), some for REINFORCE's softmax draws.
TEST(UpdateProbe, SamplingVarianceComesFromTheActionDraws) {
  Fixture f;
  auto measure = [&](Rule rule, double epsilon) {
    auto net = f.make_net(conv_spec(Feedback::Symmetric));
    TrainingStep step(*net, rule, epsilon, 5);
    return UpdateProbe(*net, step, f.device, 8).measure(1);
  };
  EXPECT_FALSE(measure(Rule::Ebp, 0.0).net.sampling_variance);
  const ProbeResult greedy = measure(Rule::BrainProp, 0.0);
  ASSERT_TRUE(greedy.net.sampling_variance);
  EXPECT_NEAR(*greedy.net.sampling_variance, 0.0, 1e-12);
  const ProbeResult exploring = measure(Rule::BrainProp, 0.5);
  EXPECT_GT(*exploring.net.sampling_variance, 1e-3);
  const ProbeResult reinforce = measure(Rule::Reinforce, 0.0);
  ASSERT_TRUE(reinforce.net.sampling_variance);
  EXPECT_GT(*reinforce.net.sampling_variance, 1e-3);
}

// The variance from explicit one-image steps (lr 1, no L2) of a net without L2: the probe's
// figures on a net with L2 must be the same, since the probe leaves L2 out.
TEST(UpdateProbe, VarianceIsThatOfOneImageSteps) {
  for (Rule rule : {Rule::BrainProp, Rule::Ebp}) {
    Fixture f;
    constexpr int kProbe = 6;
    auto probed = f.make_net(dense_spec(Feedback::Fa, 0.05));
    TrainingStep probed_step(*probed, rule, 0.0, 5);  // epsilon 0: BrainProp's action is the greedy one
    const ProbeResult r = UpdateProbe(*probed, probed_step, f.device, kProbe).measure(3);

    auto net = f.make_net(dense_spec(Feedback::Fa, 0.0));
    TrainingStep step(*net, rule, 0.0, 5);
    BatchLoader loader(*f.be, f.device, 1, DType::F64);
    loader.set_identity_order();
    Tensor stats = f.be->empty({kStatCount}, DType::F64);
    const auto initial = net->state();
    const std::vector<NamedParam> params = net->params();
    auto read = [&](const NamedParam& p) {
      std::vector<double> v(size_t(p.tensor->numel()));
      f.be->copy_to_host(*p.tensor, v.data());
      return v;
    };
    std::vector<std::vector<double>> before;
    for (const NamedParam& p : params) before.push_back(read(p));
    std::vector<std::vector<std::vector<double>>> updates;  // [sample][param][element]
    for (int b = 0; b < kProbe; ++b) {
      net->load_state(initial, "initial");
      loader.load(b, 1);
      step.run(loader.x(), loader.y(), 1.0, 0, stats);
      std::vector<std::vector<double>> u;
      for (size_t p = 0; p < params.size(); ++p) {
        u.push_back(read(params[p]));
        for (size_t i = 0; i < u[p].size(); ++i) u[p][i] -= before[p][i];
      }
      updates.push_back(u);
    }
    double mean_sq = 0, spread = 0;
    for (size_t p = 0; p < params.size(); ++p)
      for (size_t i = 0; i < before[p].size(); ++i) {
        double mean = 0;
        for (int b = 0; b < kProbe; ++b) mean += updates[size_t(b)][p][i] / kProbe;
        mean_sq += mean * mean;
        for (int b = 0; b < kProbe; ++b) spread += std::pow(updates[size_t(b)][p][i] - mean, 2);
      }
    const double expected = spread / (kProbe - 1) / mean_sq;
    ASSERT_TRUE(r.net.update_variance);
    EXPECT_NEAR(*r.net.update_variance, expected, 1e-9 * expected) << rule_name(rule);
    EXPECT_NEAR(r.net.update_norm, std::sqrt(mean_sq), 1e-9 * std::sqrt(mean_sq)) << rule_name(rule);
  }
}

TEST(UpdateProbe, JsonRoundTrip) {
  Fixture f;
  auto net = f.make_net(conv_spec(Feedback::Fa));
  TrainingStep step(*net, Rule::BrainProp, 0.3, 5);
  const ProbeResult r = UpdateProbe(*net, step, f.device, 5).measure(2);
  EXPECT_EQ(ProbeResult::from_json(r.to_json()).to_json(), r.to_json());
  EXPECT_EQ(r.to_json().at("layers").at(0).at("layer"), "conv2d1");  // the net's order
}

}  // namespace
}  // namespace bp
