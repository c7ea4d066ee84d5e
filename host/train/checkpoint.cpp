#include "train/checkpoint.h"

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "io/safetensors.h"
#include "math/finite.h"

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

namespace {

std::map<std::string, std::vector<uint8_t>> tensor_bytes(const SafetensorsFile& file,
                                                         const std::string& path, DType dtype) {
  std::map<std::string, std::vector<uint8_t>> values;
  for (const NamedTensor& t : file.tensors) {
    BP_CHECK(t.dtype == dtype, path << ": tensor " << t.name << " is " << dtype_name(t.dtype)
                                    << ", the net is " << dtype_name(dtype));
    values[t.name] = t.bytes;
    // A checkpoint with NaN or Inf would resume or evaluate a diverged net as if it were trained.
    int64_t bad = 0;
    if (t.dtype == DType::F32) {
      for (size_t i = 0; i + sizeof(float) <= t.bytes.size(); i += sizeof(float)) {
        float v;
        std::memcpy(&v, t.bytes.data() + i, sizeof v);
        bad += is_nonfinite(v) ? 1 : 0;
      }
    }
    BP_CHECK(bad == 0, path << ": tensor " << t.name << " holds " << bad
                            << " non-finite values (NaN or Inf): refusing a diverged checkpoint");
  }
  return values;
}

}  // namespace

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
  // std::stoi would throw its own exceptions, and take "3abc" as 3.
  const std::string& epoch = field("epoch");
  char* end = nullptr;
  errno = 0;
  const long value = std::strtol(epoch.c_str(), &end, 10);
  BP_CHECK(!epoch.empty() && *end == '\0' && errno == 0 && value >= 0 && value <= INT_MAX,
           path << ": metadata \"epoch\" is \"" << epoch << "\", not an epoch number");
  info.epoch = int(value);
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(field("config"));
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for 1e999
    BP_FAIL(path << ": metadata \"config\" is not valid JSON: " << e.what());
  }
  info.config = config_from_json(config, path);
  info.tensors = tensor_bytes(file, path, DType::F32);
  return info;
}

std::map<std::string, std::vector<uint8_t>> read_checkpoint_tensors(const std::string& path, DType dtype) {
  return tensor_bytes(load_safetensors(path), path, dtype);
}

void load_checkpoint_weights(const CheckpointInfo& info, const std::string& path, Net& net) {
  BP_CHECK(net.dtype() == DType::F32, path << ": checkpoints hold float32, the net is " << dtype_name(net.dtype()));
  net.load_state(info.tensors, path);
}

void load_checkpoint_weights(const std::string& path, Net& net) {
  net.load_state(read_checkpoint_tensors(path, net.dtype()), path);
}

}  // namespace bp
