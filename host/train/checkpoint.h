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
};

// Writes atomically (temporary file, then rename).
void save_checkpoint(const std::string& path, Net& net, const TrainConfig& config, int epoch,
                     const std::map<std::string, std::string>& extra = {});
// Reads only the metadata: what net to build.
CheckpointInfo read_checkpoint_info(const std::string& path);
// Loads the parameters into a net built from read_checkpoint_info().config.
void load_checkpoint_weights(const std::string& path, Net& net);

}  // namespace bp
