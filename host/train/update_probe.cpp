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

// The change a backward pass made to every parameter: fn(p, i, after - before) in double for
// element i of parameter p (Net::params() order), `before` being the snapshot's bytes. The
// read-back goes into `host`, kept by the caller: after its first epoch the probe allocates
// nothing, and reads each parameter once per pass (a probe makes 2 + size + 8 passes).
class ParamDeltas {
 public:
  ParamDeltas(Backend& be, const std::vector<NamedParam>& params,
              const std::map<std::string, std::vector<uint8_t>>& snapshot, std::vector<std::vector<uint8_t>>& host)
      : be_(be), params_(params), host_(host) {
    host_.resize(params.size());
    for (const NamedParam& p : params) before_.push_back(snapshot.at(p.name).data());
  }
  size_t elements(size_t p) const { return size_t(params_[p].tensor->numel()); }

  template <typename Fn>
  void visit(Fn&& fn) {
    for (size_t p = 0; p < params_.size(); ++p) {
      const Tensor& t = *params_[p].tensor;
      host_[p].resize(t.bytes());
      be_.copy_to_host(t, host_[p].data());
      if (t.dtype() == DType::F64) {
        each<double>(p, fn);
      } else {
        BP_CHECK(t.dtype() == DType::F32, "update probe: a " << dtype_name(t.dtype()) << " parameter");
        each<float>(p, fn);
      }
    }
  }

 private:
  template <typename T, typename Fn>
  void each(size_t p, Fn& fn) {
    const T* after = reinterpret_cast<const T*>(host_[p].data());
    const T* before = reinterpret_cast<const T*>(before_[p]);
    const size_t n = host_[p].size() / sizeof(T);
    for (size_t i = 0; i < n; ++i) fn(p, i, double(after[i]) - double(before[i]));
  }

  Backend& be_;
  const std::vector<NamedParam>& params_;
  std::vector<std::vector<uint8_t>>& host_;
  std::vector<const uint8_t*> before_;
};

// `buffers` sized like the parameters (one double per element), zeroed; reused across epochs.
void size_like(std::vector<std::vector<double>>& buffers, const ParamDeltas& deltas, size_t count) {
  buffers.resize(count);
  for (size_t p = 0; p < count; ++p) buffers[p].assign(deltas.elements(p), 0.0);
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
  ParamDeltas deltas(be, params, snapshot, host_params_);

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

  // The update (learning rate 1, no L2) that `err` makes, handed parameter by parameter and
  // element by element to `fn` (ParamDeltas::visit).
  auto update_from = [&](const std::vector<double>& err, int batch, bool true_gradient, auto&& fn) {
    net_.load_state(snapshot, "update probe snapshot");
    write_doubles(be, err_, err);
    UpdateArgs args{1.0, batch};
    args.l2_scale = 0.0;
    args.true_gradient = true_gradient;
    step_.backward(action_, err_, args);
    deltas.visit(fn);
  };

  std::map<std::string, Sums> sums;
  Sums all;
  std::vector<std::string> order;
  std::vector<Sums*> sums_of;  // parameter p's layer's sums
  for (const NamedParam& p : params) {
    const std::string layer = layer_of(p.name);
    if (!sums.count(layer)) order.push_back(layer);
    sums_of.push_back(&sums[layer]);
  }
  std::vector<std::vector<double>>& rule_update = rule_update_;
  size_like(rule_update, deltas, params.size());
  update_from(err_host, size_, false, [&](size_t p, size_t i, double u) { rule_update[p][i] = u; });
  update_from(err_host, size_, true, [&](size_t p, size_t i, double g) {
    const double u = rule_update[p][i];
    Sums& s = *sums_of[p];
    s.uu += u * u;
    s.gg += g * g;
    s.ug += u * g;
  });
  // Sample b's error alone, at batch 1: the batch's update is the mean of these.
  const size_t per_sample = err_host.size() / size_t(size_);
  std::vector<double> masked(err_host.size());
  for (int b = 0; b < size_; ++b) {
    std::fill(masked.begin(), masked.end(), 0.0);
    std::copy_n(err_host.begin() + ptrdiff_t(b * per_sample), per_sample, masked.begin() + ptrdiff_t(b * per_sample));
    update_from(masked, 1, false, [&](size_t p, size_t i, double sample) {
      const double d = sample - rule_update[p][i];
      sums_of[p]->spread += d * d;
    });
  }

  // Fresh action draws for the same images and forward pass: what the sampling alone spreads.
  const bool samples_actions = step_.rule() == Rule::BrainProp || step_.rule() == Rule::Reinforce;
  if (samples_actions) {
    // Per element, the sum and the sum of squares over the draws (double: the spread is a
    // difference of two sums, fine at these magnitudes), not the K updates themselves.
    std::vector<std::vector<double>>& sum = draw_sum_;
    std::vector<std::vector<double>>& sum2 = draw_sum2_;
    size_like(sum, deltas, params.size());
    size_like(sum2, deltas, params.size());
    for (int k = 1; k <= kSamplingDraws; ++k) {
      const uint64_t draw_key = key + (uint64_t(k) << 32);  // disjoint from every epoch's key
      step_.head(logits, loader_.y(), draw_key, stats_);
      if (step_.rule() == Rule::Reinforce) step_.set_baseline(baseline);
      if (selected) be.copy_from_host(action_, read_actions(be, step_.actions()).data());
      update_from(read_doubles(be, selected ? step_.errors() : step_.output_gradient()), size_, false,
                  [&](size_t p, size_t i, double x) {
                    sum[p][i] += x;
                    sum2[p][i] += x * x;
                  });
    }
    const double K = kSamplingDraws;
    for (size_t p = 0; p < params.size(); ++p) {
      Sums& s = *sums_of[p];
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
