// Per-layer times of a training step on the backend's clock (CUDA events on a GPU), for
// `brainprop bench --per-layer`. Net calls begin/end around each layer's forward and backward
// when a LayerTiming is attached; the marks are resolved once, at the end.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/backend.h"

namespace bp {

class LayerTiming {
 public:
  explicit LayerTiming(Backend& be) : be_(be) {}
  void begin(const std::string& name);
  void end(const std::string& name);
  // Mean milliseconds per occurrence of each name, in the order first seen.
  std::vector<std::pair<std::string, double>> mean_ms();

 private:
  Backend& be_;
  std::vector<std::string> order_;
  std::map<std::string, std::vector<std::pair<int64_t, int64_t>>> spans_;
  std::map<std::string, int64_t> open_;
};

}  // namespace bp
