// Checkpoints: a net's parameters in the safetensors format, with the run configuration,
// epoch and seed in the metadata, so `eval` can rebuild the net from the file alone.
#pragma once
#include <map>
#include <string>

#include "model/net.h"
#include "train/train_config.h"

namespace bp {

struct CheckpointInfo {
  TrainConfig config;
  int epoch = 0;
  std::map<std::string, std::string> metadata;
  std::map<std::string, std::vector<uint8_t>> tensors;  // parameter name -> float32 bytes
};

// Writes atomically (temporary file, then rename).
void save_checkpoint(const std::string& path, Net& net, const TrainConfig& config, int epoch,
                     const std::map<std::string, std::string>& extra = {});
// Reads the file once: what net to build (config, epoch, metadata) and its tensors.
CheckpointInfo read_checkpoint_info(const std::string& path);
// The tensors of a checkpoint, by name, checked to be `dtype` (what Net::load_state takes).
std::map<std::string, std::vector<uint8_t>> read_checkpoint_tensors(const std::string& path, DType dtype);
// Loads the parameters into a net built from read_checkpoint_info().config.
void load_checkpoint_weights(const CheckpointInfo& info, const std::string& path, Net& net);
void load_checkpoint_weights(const std::string& path, Net& net);

}  // namespace bp
