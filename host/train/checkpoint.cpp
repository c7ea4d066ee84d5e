#include "train/checkpoint.h"

#include "io/safetensors.h"

namespace bp {

void save_checkpoint(const std::string& path, Net& net, const TrainConfig& config, int epoch,
                     const std::map<std::string, std::string>& extra) {
  std::vector<NamedTensor> tensors;
  std::map<std::string, std::vector<uint8_t>> state = net.state();
  for (const NamedParam& p : net.state_tensors())
    tensors.push_back(NamedTensor{p.name, p.tensor->dtype(), p.tensor->shape(), std::move(state[p.name])});
  std::map<std::string, std::string> metadata = extra;
  metadata["format"] = "brainprop-checkpoint-1";
  metadata["config"] = config_to_json(config).dump();
  metadata["model"] = model_to_json(config.model).dump();
  metadata["epoch"] = std::to_string(epoch);
  metadata["seed"] = std::to_string(config.seed);
  metadata["rule"] = rule_name(config.rule);
  metadata["input_shape"] = nlohmann::json(net.input_shape()).dump();
  metadata["classes"] = std::to_string(net.classes());
  save_safetensors(path, tensors, metadata);
}

CheckpointInfo read_checkpoint_info(const std::string& path) {
  const SafetensorsFile file = load_safetensors(path);
  CheckpointInfo info;
  info.metadata = file.metadata;
  auto field = [&](const char* key) -> const std::string& {
    auto it = file.metadata.find(key);
    BP_CHECK(it != file.metadata.end(), path << ": not a brainprop checkpoint (no \"" << key
                                             << "\" in the metadata)");
    return it->second;
  };
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(field("config"));
  } catch (const nlohmann::json::parse_error& e) {
    BP_FAIL(path << ": metadata \"config\" is not valid JSON: " << e.what());
  }
  info.config = config_from_json(config, path);
  info.epoch = std::stoi(field("epoch"));
  return info;
}

void load_checkpoint_weights(const std::string& path, Net& net) {
  const SafetensorsFile file = load_safetensors(path);
  std::map<std::string, std::vector<uint8_t>> values;
  for (const NamedTensor& t : file.tensors) {
    BP_CHECK(t.dtype == net.dtype(), path << ": tensor " << t.name << " is " << dtype_name(t.dtype)
                                          << ", the net is " << dtype_name(net.dtype()));
    values[t.name] = t.bytes;
  }
  net.load_state(values, path);
}

}  // namespace bp
