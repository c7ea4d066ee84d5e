// Everything a training run needs beyond the model: resolved from the CLI, the model's
// training defaults and the reference's hyper-parameters, and written to config.json.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "model/model_spec.h"

namespace bp {

// BrainProp (the paper's rule), EBP (error backpropagation) and REINFORCE (the reward-only
// policy-gradient baseline with the same information as BrainProp; docs/design.md).
enum class Rule { BrainProp, Ebp, Reinforce };
Rule parse_rule(const std::string& text);  // "brainprop" | "ebp" | "reinforce", any case
const char* rule_name(Rule rule);

struct TrainConfig {
  std::string data_spec = "fashion-mnist";
  std::string model_source = "dense";  // name or path it was loaded from
  ModelSpec model;
  Rule rule = Rule::BrainProp;
  int batch_size = 128;
  double lr = 0.1;
  int lr_decay_every = 100;
  double lr_decay_factor = 0.5;
  double epsilon = 0.02;
  int max_epochs = 500;
  int patience = 45;
  double min_delta = 0.001;
  uint64_t seed = 1;
  // "holdout": the last holdout_fraction of a seeded permutation of the training set;
  // "test": the test set, the reference's (and so the paper's) protocol.
  std::string val = "holdout";
  double holdout_fraction = 0.1;
  int64_t train_limit = -1, test_limit = -1;
  std::string backend = "auto";
  int threads = 0;  // 0: all cores
  std::string math = "fp32";  // fp32 | tf32: GEMM/convolution precision on the GPU
  std::string out_dir;
  int eval_batch = 1000;
  // Images in the update probe run after every epoch (train/update_probe.h); 0: no probe.
  int probe_size = 32;
  bool progress = true;
  bool graphs = true;  // replay each step as a recorded graph where the backend can
  // Stop as if interrupted once this many steps have run (-1: never). For testing resume.
  int64_t halt_after_steps = -1;
};

nlohmann::json config_to_json(const TrainConfig& config);
// The inverse, for `eval` and `--resume`: every field must be present.
TrainConfig config_from_json(const nlohmann::json& doc, const std::string& source);

}  // namespace bp
