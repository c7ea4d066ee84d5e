#include "model/layer_timing.h"

namespace bp {

void LayerTiming::begin(const std::string& name) {
  if (!spans_.count(name)) order_.push_back(name);
  spans_[name];
  open_[name] = be_.timing_mark();
}

void LayerTiming::end(const std::string& name) {
  auto it = open_.find(name);
  BP_CHECK(it != open_.end(), "layer timing: end of \"" << name << "\" without a begin");
  spans_[name].emplace_back(it->second, be_.timing_mark());
  open_.erase(it);
}

std::vector<std::pair<std::string, double>> LayerTiming::mean_ms() {
  std::vector<std::pair<std::string, double>> out;
  for (const std::string& name : order_) {
    const auto& spans = spans_[name];
    double total = 0;
    for (const auto& [from, to] : spans) total += be_.timing_elapsed_ms(from, to);
    out.emplace_back(name, spans.empty() ? 0.0 : total / double(spans.size()));
  }
  return out;
}

}  // namespace bp
