#include "train/train_config.h"

#include <algorithm>
#include <cctype>

#include "core/error.h"

namespace bp {

Rule parse_rule(const std::string& text) {
  std::string lower = text;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "brainprop") return Rule::BrainProp;
  if (lower == "ebp" || lower == "backprop") return Rule::Ebp;
  if (lower == "reinforce") return Rule::Reinforce;
  BP_FAIL("unknown learning rule \"" << text << "\" (known: brainprop, ebp, reinforce)");
}

const char* rule_name(Rule rule) {
  switch (rule) {
    case Rule::BrainProp: return "brainprop";
    case Rule::Ebp: return "ebp";
    case Rule::Reinforce: return "reinforce";
  }
  return "?";
}

nlohmann::json config_to_json(const TrainConfig& c) {
  return {{"data", c.data_spec},
          {"model_source", c.model_source},
          {"model", model_to_json(c.model)},
          {"rule", rule_name(c.rule)},
          {"batch_size", c.batch_size},
          {"lr", c.lr},
          {"lr_decay_every", c.lr_decay_every},
          {"lr_decay_factor", c.lr_decay_factor},
          {"epsilon", c.epsilon},
          {"max_epochs", c.max_epochs},
          {"patience", c.patience},
          {"min_delta", c.min_delta},
          {"seed", c.seed},
          {"val", c.val},
          {"holdout_fraction", c.holdout_fraction},
          {"train_limit", c.train_limit},
          {"test_limit", c.test_limit},
          {"backend", c.backend},
          {"threads", c.threads},
          {"math", c.math},
          {"eval_batch", c.eval_batch},
          {"probe_size", c.probe_size}};
}

TrainConfig config_from_json(const nlohmann::json& doc, const std::string& source) {
  TrainConfig c;
  try {
    c.data_spec = doc.at("data").get<std::string>();
    c.model_source = doc.at("model_source").get<std::string>();
    c.model = parse_model(doc.at("model"), source + ": model");
    c.rule = parse_rule(doc.at("rule").get<std::string>());
    c.batch_size = doc.at("batch_size").get<int>();
    c.lr = doc.at("lr").get<double>();
    c.lr_decay_every = doc.at("lr_decay_every").get<int>();
    c.lr_decay_factor = doc.at("lr_decay_factor").get<double>();
    c.epsilon = doc.at("epsilon").get<double>();
    c.max_epochs = doc.at("max_epochs").get<int>();
    c.patience = doc.at("patience").get<int>();
    c.min_delta = doc.at("min_delta").get<double>();
    c.seed = doc.at("seed").get<uint64_t>();
    c.val = doc.at("val").get<std::string>();
    c.holdout_fraction = doc.at("holdout_fraction").get<double>();
    c.train_limit = doc.at("train_limit").get<int64_t>();
    c.test_limit = doc.at("test_limit").get<int64_t>();
    c.backend = doc.at("backend").get<std::string>();
    c.threads = doc.at("threads").get<int>();
    c.math = doc.value("math", std::string("fp32"));  // absent before the CUDA backend
    c.eval_batch = doc.at("eval_batch").get<int>();
    c.probe_size = doc.value("probe_size", 0);  // absent before the update probe: none
  } catch (const nlohmann::json::exception& e) {
    BP_FAIL(source << ": not a brainprop run configuration: " << e.what());
  }
  return c;
}

}  // namespace bp
