// A model as data: the JSON files in models/ parsed into a validated ModelSpec.
// The schema is documented in docs/models.md. Unknown keys are rejected, naming the key.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace bp {

struct LayerSpec {
  std::string type;      // dense, relu, flatten, conv2d, local2d, batchnorm, maxpool2d, dropout
  int units = 0;         // dense
  bool bias = false;     // dense, conv2d, local2d
  double init_std = 0;   // weights ~ N(0, init_std^2)
  double l2 = 0;         // Keras-convention L2 coefficient
  // conv2d, local2d
  int filters = 0;
  int kernel_h = 3, kernel_w = 3;
  int stride_h = 1, stride_w = 1;
  std::string padding = "valid";  // "same" | "valid"
  // batchnorm
  double momentum = 0.99, epsilon = 1e-3;
  // maxpool2d
  int pool = 2, pool_stride = 2;
  // dropout: the fraction of units dropped (Keras semantics)
  double rate = 0;
};

// The reference's hyper-parameters for this architecture (the CLI may override them).
struct TrainingDefaults {
  int batch_size = 128;
  double lr = 0.1;
};

// The feedback pathway: which matrix carries the feedback down through a weighted layer
// (docs/design.md, "Feedback pathways").
//   symmetric: W itself (the paper; the default)
//   fa:        feedback alignment, a fixed random B of W's shape
//   learned:   Kolen-Pollack, B starts random and receives W's update, so B - W decays
//   dfa:       direct feedback alignment, the output error straight to each hidden weighted
//              layer through its own fixed random D (held by the Net, not the layers)
enum class Feedback { Symmetric, Fa, Learned, Dfa };
Feedback parse_feedback(const std::string& text);  // "symmetric" | "fa" | "learned" | "dfa", any case
const char* feedback_name(Feedback feedback);
// fa and learned give every weighted layer a B of W's shape ("<layer>.feedback").
inline bool has_feedback_weights(Feedback f) { return f == Feedback::Fa || f == Feedback::Learned; }

struct ModelSpec {
  std::string name;
  std::string description;
  std::vector<LayerSpec> layers;  // hidden layers, in order
  LayerSpec output;               // the output dense layer; units come from the data set
  TrainingDefaults training;
  Feedback feedback = Feedback::Symmetric;
  // learned only: a Keras-convention L2 coefficient added to each weighted layer's l2 for both
  // W and B, so that B - W shrinks by (1 - 2 lr (l2 + feedback_decay)) per step.
  double feedback_decay = 0;
};

// Parses and validates; `source` (a file path) prefixes every error, followed by the JSON
// path of the offending field, e.g. "models/x.json: layers[2].units: must be > 0, got -3".
ModelSpec parse_model(const nlohmann::json& doc, const std::string& source);
// Parses model-file text (JSON, duplicate keys refused) and validates it as parse_model does.
ModelSpec parse_model_text(std::string_view text, const std::string& source);
// Reads models/NAME.json for a bare name, or the given path for anything ending in .json.
ModelSpec load_model(const std::string& name_or_path);
// The fully resolved spec, every default written out (what config.json records).
nlohmann::json model_to_json(const ModelSpec& spec);

std::string models_directory();  // $BRAINPROP_MODELS or the models/ of the source tree

}  // namespace bp
