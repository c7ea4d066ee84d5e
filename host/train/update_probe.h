// The update probe: once per epoch, on a fixed batch of training images, how the update a rule
// makes relates to the true gradient of its loss, how much it varies from sample to sample, and
// how far feedback weights B are from the forward weights W (docs/design.md, "Update
// diagnostics"). The net is left exactly as it was: weights, feedback weights and batch-norm
// statistics are restored after the probe.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "model/net.h"
#include "train/device_data.h"
#include "train/training_step.h"

namespace bp {

struct LayerProbe {
  std::string layer;  // "dense1", "output"
  // Degrees between W and B (fa, learned feedback); nullopt where the layer has no B.
  std::optional<double> feedback_angle;
  // Degrees between the rule's update and the true gradient of the rule's loss (the update the
  // same errors make when fed back through W); nullopt where either is zero.
  std::optional<double> update_angle;
  // The per-sample spread of the update: sum_b ||u_b - mean u||^2 / (P - 1) over ||mean u||^2,
  // u_b the update sample b's error alone makes; nullopt where the mean update is zero.
  std::optional<double> update_variance;
  // The spread that the sampled actions alone cause: the batch's update for kSamplingDraws
  // fresh draws of the actions (same images, same forward pass), sum_k ||u_k - mean||^2 /
  // (K - 1) over ||mean||^2. nullopt for EBP (no sampling) or where the mean is zero.
  std::optional<double> sampling_variance;
  double update_norm = 0;  // ||mean u|| at learning rate 1, without L2
};

// Action draws the probe makes for LayerProbe::sampling_variance.
constexpr int kSamplingDraws = 8;

struct ProbeResult {
  int probe_size = 0;
  std::vector<LayerProbe> layers;
  LayerProbe net;  // the same over every parameter of the net (layer "net")
  double seconds = 0;
  nlohmann::json to_json() const;
  static ProbeResult from_json(const nlohmann::json& j);
};

class UpdateProbe {
 public:
  // The probe batch: the first `size` images of `images` (fewer when it has fewer, at most the
  // net's largest batch).
  UpdateProbe(Net& net, TrainingStep& step, const DeviceImages& images, int size);
  int size() const { return size_; }
  // The figures for the net as it is now; `epoch` moves the probe's random draws.
  ProbeResult measure(int epoch);

 private:
  Net& net_;
  TrainingStep& step_;
  int size_;  // before loader_, which is sized by it
  BatchLoader loader_;
  Tensor stats_, action_, err_;
  // Host scratch kept across epochs, so a probe allocates nothing after the first: the
  // parameters read back after each pass, the batch's rule update, and the sums over draws.
  std::vector<std::vector<uint8_t>> host_params_;
  std::vector<std::vector<double>> rule_update_, draw_sum_, draw_sum2_;
};

}  // namespace bp
