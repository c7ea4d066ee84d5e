#include "train/update_probe.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include "core/error.h"

namespace bp {

namespace {

// The probe's Philox step counter: far above any training step, so its dropout masks and
// action draws are its own, and moved by the epoch so each epoch's probe draws anew.
constexpr uint64_t kProbeStepBase = uint64_t(1) << 62;

// A float32 or float64 tensor read back as doubles, and written from them.
std::vector<double> read_doubles(Backend& be, const Tensor& t) {
  std::vector<double> out(size_t(t.numel()));
  if (t.dtype() == DType::F64) {
    be.copy_to_host(t, out.data());
  } else {
    BP_CHECK(t.dtype() == DType::F32, "update probe: a " << dtype_name(t.dtype()) << " tensor");
    std::vector<float> buffer(out.size());
    be.copy_to_host(t, buffer.data());
    std::copy(buffer.begin(), buffer.end(), out.begin());
  }
  return out;
}

void write_doubles(Backend& be, Tensor& t, const std::vector<double>& values) {
  if (t.dtype() == DType::F64) {
    be.copy_from_host(t, values.data());
  } else {
    const std::vector<float> buffer(values.begin(), values.end());
    be.copy_from_host(t, buffer.data());
  }
}

std::vector<int32_t> read_actions(Backend& be, const Tensor& actions) {
  std::vector<int32_t> out(static_cast<size_t>(actions.numel()));
  be.copy_to_host(actions, out.data());
  return out;
}

// Every parameter of the net, in Net::params() order.
std::vector<std::vector<double>> read_params(Backend& be, const std::vector<NamedParam>& params) {
  std::vector<std::vector<double>> out;
  for (const NamedParam& p : params) out.push_back(read_doubles(be, *p.tensor));
  return out;
}

std::string layer_of(const std::string& param_name) {
  return param_name.substr(0, param_name.find('.'));
}

std::optional<double> angle_degrees(double dot, double norm_a2, double norm_b2) {
  if (!(norm_a2 > 0) || !(norm_b2 > 0)) return std::nullopt;
  const double c = std::clamp(dot / std::sqrt(norm_a2 * norm_b2), -1.0, 1.0);
  return std::acos(c) * 180.0 / M_PI;
}

// Sums over the elements of one layer (or of the whole net).
struct Sums {
  double uu = 0, gg = 0, ug = 0;  // rule update u and true gradient g
  double spread = 0;              // sum over samples of ||u_b - u||^2
  double draws_spread = 0, draws_mean2 = 0;  // over action draws: sum ||u_k - m||^2, ||m||^2
};

nlohmann::json figure(const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); }
std::optional<double> figure_from(const nlohmann::json& j, const char* key) {
  if (!j.contains(key) || j.at(key).is_null()) return std::nullopt;
  return j.at(key).get<double>();
}

nlohmann::json layer_json(const LayerProbe& l) {
  nlohmann::json j = {{"update_angle", figure(l.update_angle)},
                      {"update_variance", figure(l.update_variance)},
                      {"update_norm", l.update_norm}};
  if (l.sampling_variance) j["sampling_variance"] = *l.sampling_variance;
  if (l.feedback_angle) j["feedback_angle"] = *l.feedback_angle;
  return j;
}

LayerProbe layer_from_json(const std::string& name, const nlohmann::json& j) {
  LayerProbe l;
  l.layer = name;
  l.feedback_angle = figure_from(j, "feedback_angle");
  l.update_angle = figure_from(j, "update_angle");
  l.update_variance = figure_from(j, "update_variance");
  l.sampling_variance = figure_from(j, "sampling_variance");
  l.update_norm = j.at("update_norm").get<double>();
  return l;
}

}  // namespace

nlohmann::json ProbeResult::to_json() const {
  nlohmann::json layers_json = nlohmann::json::array();  // in the net's order
  for (const LayerProbe& l : layers) {
    nlohmann::json item = {{"layer", l.layer}};
    item.update(layer_json(l));
    layers_json.push_back(item);
  }
  nlohmann::json j = layer_json(net);
  j["size"] = probe_size;
  j["seconds"] = seconds;
  j["layers"] = layers_json;
  return j;
}

ProbeResult ProbeResult::from_json(const nlohmann::json& j) {
  ProbeResult r;
  r.probe_size = j.at("size").get<int>();
  r.seconds = j.at("seconds").get<double>();
  r.net = layer_from_json("net", j);
  for (const auto& item : j.at("layers")) r.layers.push_back(layer_from_json(item.at("layer"), item));
  return r;
}

UpdateProbe::UpdateProbe(Net& net, TrainingStep& step, const DeviceImages& images, int size)
    : net_(net),
      step_(step),
      size_(int(std::min<int64_t>({int64_t(size), images.count(), int64_t(net.max_batch())}))),
      loader_(net.backend(), images, std::max(1, size_), net.dtype()) {
  BP_CHECK(size >= 2, "the update probe needs at least 2 images, got " << size);
  BP_CHECK(size_ >= 2, "the update probe needs at least 2 images; the training set has " << images.count());
  Backend& be = net.backend();
  loader_.set_identity_order();
  stats_ = be.empty({kStatCount}, DType::F64);
  action_ = be.empty({size_}, DType::I32);
  err_ = step.rule() == Rule::BrainProp ? be.empty({size_}, net.dtype())
                                         : be.empty({size_, net.classes()}, net.dtype());
}

ProbeResult UpdateProbe::measure(int epoch) {
  const auto t0 = std::chrono::steady_clock::now();
  Backend& be = net_.backend();
  const bool selected = step_.rule() == Rule::BrainProp;
  const auto snapshot = net_.state();  // restored after every backward pass, and at the end
  const std::vector<NamedParam> params = net_.params();
  const std::vector<std::vector<double>> before = read_params(be, params);

  // One forward pass in training mode and one head: the errors every backward pass below
  // starts from (a backward pass reads the forward's activations, which it leaves alone).
  const uint64_t key = kProbeStepBase + uint64_t(epoch);
  loader_.load(0, size_);
  be.fill(stats_, 0.0);
  const Tensor logits = net_.forward(loader_.x(), true, key);
  // REINFORCE's head moves its running baseline: the probe's head must not.
  const double baseline = step_.rule() == Rule::Reinforce ? step_.baseline() : 0.0;
  step_.head(logits, loader_.y(), key, stats_);
  if (step_.rule() == Rule::Reinforce) step_.set_baseline(baseline);
  const Tensor& head_err = selected ? step_.errors() : step_.output_gradient();
  const std::vector<double> err_host = read_doubles(be, head_err);
  if (selected) {
    be.copy_from_host(action_, read_actions(be, step_.actions()).data());
  }

  // The update (learning rate 1, no L2) that `err` makes, parameter by parameter.
  auto update_from = [&](const std::vector<double>& err, int batch, bool true_gradient) {
    net_.load_state(snapshot, "update probe snapshot");
    write_doubles(be, err_, err);
    UpdateArgs args{1.0, batch};
    args.l2_scale = 0.0;
    args.true_gradient = true_gradient;
    step_.backward(action_, err_, args);
    std::vector<std::vector<double>> delta = read_params(be, params);
    for (size_t p = 0; p < delta.size(); ++p)
      for (size_t i = 0; i < delta[p].size(); ++i) delta[p][i] -= before[p][i];
    return delta;
  };

  const auto rule_update = update_from(err_host, size_, false);
  const auto true_gradient = update_from(err_host, size_, true);

  std::map<std::string, Sums> sums;
  Sums all;
  std::vector<std::string> order;
  for (size_t p = 0; p < params.size(); ++p) {
    const std::string layer = layer_of(params[p].name);
    if (!sums.count(layer)) order.push_back(layer);
    Sums& s = sums[layer];
    for (size_t i = 0; i < rule_update[p].size(); ++i) {
      const double u = rule_update[p][i], g = true_gradient[p][i];
      s.uu += u * u;
      s.gg += g * g;
      s.ug += u * g;
    }
  }
  // Sample b's error alone, at batch 1: the batch's update is the mean of these.
  const size_t per_sample = err_host.size() / size_t(size_);
  std::vector<double> masked(err_host.size());
  for (int b = 0; b < size_; ++b) {
    std::fill(masked.begin(), masked.end(), 0.0);
    std::copy_n(err_host.begin() + ptrdiff_t(b * per_sample), per_sample, masked.begin() + ptrdiff_t(b * per_sample));
    const auto sample_update = update_from(masked, 1, false);
    for (size_t p = 0; p < params.size(); ++p) {
      Sums& s = sums[layer_of(params[p].name)];
      for (size_t i = 0; i < sample_update[p].size(); ++i) {
        const double d = sample_update[p][i] - rule_update[p][i];
        s.spread += d * d;
      }
    }
  }

  // Fresh action draws for the same images and forward pass: what the sampling alone spreads.
  const bool samples_actions = step_.rule() == Rule::BrainProp || step_.rule() == Rule::Reinforce;
  if (samples_actions) {
    // Per element, the sum and the sum of squares over the draws (double: the spread is a
    // difference of two sums, fine at these magnitudes), not the K updates themselves.
    std::vector<std::vector<double>> sum, sum2;
    for (const auto& p : before) {
      sum.emplace_back(p.size(), 0.0);
      sum2.emplace_back(p.size(), 0.0);
    }
    for (int k = 1; k <= kSamplingDraws; ++k) {
      const uint64_t draw_key = key + (uint64_t(k) << 32);  // disjoint from every epoch's key
      step_.head(logits, loader_.y(), draw_key, stats_);
      if (step_.rule() == Rule::Reinforce) step_.set_baseline(baseline);
      if (selected) be.copy_from_host(action_, read_actions(be, step_.actions()).data());
      const auto draw = update_from(read_doubles(be, selected ? step_.errors() : step_.output_gradient()), size_, false);
      for (size_t p = 0; p < draw.size(); ++p)
        for (size_t i = 0; i < draw[p].size(); ++i) {
          sum[p][i] += draw[p][i];
          sum2[p][i] += draw[p][i] * draw[p][i];
        }
    }
    const double K = kSamplingDraws;
    for (size_t p = 0; p < params.size(); ++p) {
      Sums& s = sums[layer_of(params[p].name)];
      for (size_t i = 0; i < sum[p].size(); ++i) {
        const double mean = sum[p][i] / K;
        s.draws_mean2 += mean * mean;
        s.draws_spread += std::max(0.0, sum2[p][i] - K * mean * mean);
      }
    }
  }
  net_.load_state(snapshot, "update probe snapshot");

  // ||W||, ||B|| and W.B of layers with feedback weights B of W's shape.
  std::map<std::string, double> ww, bb, wb;
  {
    std::map<std::string, const Tensor*> weights, feedback;
    for (const NamedParam& p : net_.state_tensors()) {
      const std::string name = p.name;
      const std::string layer = layer_of(name);
      if (name == layer + ".weight") weights[layer] = p.tensor;
      if (name == layer + ".feedback") feedback[layer] = p.tensor;
    }
    for (const auto& item : feedback) {
      auto w = weights.find(item.first);
      if (w == weights.end() || w->second->numel() != item.second->numel()) continue;
      const std::vector<double> wv = read_doubles(be, *w->second), bv = read_doubles(be, *item.second);
      double a = 0, b = 0, c = 0;
      for (size_t i = 0; i < wv.size(); ++i) {
        a += wv[i] * wv[i];
        b += bv[i] * bv[i];
        c += wv[i] * bv[i];
      }
      ww[item.first] = a;
      bb[item.first] = b;
      wb[item.first] = c;
    }
  }

  auto figures = [&](const std::string& name, const Sums& s) {
    LayerProbe l;
    l.layer = name;
    l.update_angle = angle_degrees(s.ug, s.uu, s.gg);
    if (s.uu > 0) l.update_variance = s.spread / double(size_ - 1) / s.uu;
    if (s.draws_mean2 > 0) l.sampling_variance = s.draws_spread / double(kSamplingDraws - 1) / s.draws_mean2;
    l.update_norm = std::sqrt(s.uu);
    if (ww.count(name)) l.feedback_angle = angle_degrees(wb[name], ww[name], bb[name]);
    return l;
  };
  ProbeResult result;
  result.probe_size = size_;
  for (const std::string& layer : order) {
    const Sums& s = sums[layer];
    all.uu += s.uu;
    all.gg += s.gg;
    all.ug += s.ug;
    all.spread += s.spread;
    all.draws_spread += s.draws_spread;
    all.draws_mean2 += s.draws_mean2;
    result.layers.push_back(figures(layer, s));
  }
  result.net = figures("net", all);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace bp
