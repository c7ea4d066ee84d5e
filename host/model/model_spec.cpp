#include "model/model_spec.h"

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "core/error.h"

namespace bp {
namespace {

using nlohmann::json;

// Walks a JSON document keeping the path, so every error can say where it is.
class Reader {
 public:
  Reader(const json& node, std::string source, std::string path)
      : node_(node), source_(std::move(source)), path_(std::move(path)) {}

  [[noreturn]] void fail(const std::string& why) const {
    BP_FAIL(source_ << ": " << (path_.empty() ? "(top level)" : path_) << ": " << why);
  }
  Reader child(const std::string& key) const {
    return Reader(node_.at(key), source_, path_.empty() ? key : path_ + "." + key);
  }
  Reader element(size_t i) const {
    return Reader(node_.at(i), source_, path_ + "[" + std::to_string(i) + "]");
  }
  const json& node() const { return node_; }
  bool has(const std::string& key) const { return node_.contains(key); }

  void expect_object(const std::set<std::string>& allowed) const {
    if (!node_.is_object()) fail("expected an object, got " + std::string(node_.type_name()));
    for (const auto& item : node_.items()) {
      if (allowed.count(item.key())) continue;
      std::string known;
      for (const auto& k : allowed) known += (known.empty() ? "" : ", ") + k;
      // The offending field is the key itself: report its path, e.g. layers[0].unitz.
      child(item.key()).fail("unknown key \"" + item.key() + "\" (known keys: " + known + ")");
    }
  }
  std::string string_at(const std::string& key, const std::string& fallback, bool required) const {
    if (!has(key)) {
      if (required) fail("missing required field \"" + key + "\"");
      return fallback;
    }
    const Reader r = child(key);
    if (!r.node_.is_string()) r.fail("expected a string");
    return r.node_.get<std::string>();
  }
  double number_at(const std::string& key, double fallback, double min, bool min_inclusive) const {
    if (!has(key)) return fallback;
    const Reader r = child(key);
    if (!r.node_.is_number()) r.fail("expected a number, got " + std::string(r.node_.type_name()));
    const double v = r.node_.get<double>();
    if (min_inclusive ? v < min : v <= min)
      r.fail("must be " + std::string(min_inclusive ? ">= " : "> ") + json(min).dump() + ", got " +
             r.node_.dump());
    return v;
  }
  int positive_int_at(const std::string& key, int fallback, bool required) const {
    if (!has(key)) {
      if (required) fail("missing required field \"" + key + "\"");
      return fallback;
    }
    const Reader r = child(key);
    if (!r.node_.is_number_integer()) r.fail("expected an integer, got " + r.node_.dump());
    const long long v = r.node_.get<long long>();
    if (v <= 0 || v > (1 << 30)) r.fail("must be > 0, got " + r.node_.dump());
    return static_cast<int>(v);
  }
  bool bool_at(const std::string& key, bool fallback) const {
    if (!has(key)) return fallback;
    const Reader r = child(key);
    if (!r.node_.is_boolean()) r.fail("expected true or false, got " + r.node_.dump());
    return r.node_.get<bool>();
  }

 private:
  const json& node_;
  std::string source_;
  std::string path_;
};

LayerSpec parse_dense(const Reader& r, double default_std,
                      double default_l2, bool is_output) {
  LayerSpec layer;
  layer.type = "dense";
  if (is_output) {
    r.expect_object({"bias", "init_std", "l2"});
  } else {
    r.expect_object({"type", "units", "bias", "init_std", "l2"});
    layer.units = r.positive_int_at("units", 0, true);
  }
  layer.bias = r.bool_at("bias", false);
  layer.init_std = r.number_at("init_std", default_std, 0.0, true);
  layer.l2 = r.number_at("l2", default_l2, 0.0, true);
  return layer;
}

// An integer or a pair [h, w] of integers, each > 0.
void int_pair_at(const Reader& r, const std::string& key, int* h, int* w) {
  if (!r.has(key)) return;
  const Reader v = r.child(key);
  auto positive = [&](const nlohmann::json& n) {
    if (!n.is_number_integer() || n.get<long long>() <= 0 || n.get<long long>() > 4096)
      v.fail("expected a positive integer or [h, w] of them, got " + v.node().dump());
    return n.get<int>();
  };
  if (v.node().is_array()) {
    if (v.node().size() != 2) v.fail("expected [h, w], got " + v.node().dump());
    *h = positive(v.node()[0]);
    *w = positive(v.node()[1]);
  } else {
    *h = *w = positive(v.node());
  }
}

LayerSpec parse_conv(const Reader& r, const std::string& type, double default_std, double default_l2) {
  r.expect_object({"type", "filters", "kernel", "strides", "padding", "bias", "init_std", "l2"});
  LayerSpec layer;
  layer.type = type;
  layer.filters = r.positive_int_at("filters", 0, true);
  int_pair_at(r, "kernel", &layer.kernel_h, &layer.kernel_w);
  int_pair_at(r, "strides", &layer.stride_h, &layer.stride_w);
  layer.padding = r.string_at("padding", "valid", false);
  if (layer.padding != "same" && layer.padding != "valid")
    r.child("padding").fail("expected \"same\" or \"valid\", got \"" + layer.padding + "\"");
  layer.bias = r.bool_at("bias", false);
  layer.init_std = r.number_at("init_std", default_std, 0.0, true);
  layer.l2 = r.number_at("l2", default_l2, 0.0, true);
  return layer;
}

LayerSpec parse_simple(const Reader& r, const std::string& type) {
  LayerSpec layer;
  layer.type = type;
  if (type == "batchnorm") {
    r.expect_object({"type", "momentum", "epsilon"});
    layer.momentum = r.number_at("momentum", 0.99, 0.0, true);
    if (layer.momentum >= 1) r.child("momentum").fail("must be < 1");
    layer.epsilon = r.number_at("epsilon", 1e-3, 0.0, false);
  } else if (type == "maxpool2d") {
    r.expect_object({"type", "pool", "strides"});
    layer.pool = r.positive_int_at("pool", 2, false);
    layer.pool_stride = r.positive_int_at("strides", layer.pool, false);
  } else if (type == "dropout") {
    r.expect_object({"type", "rate"});
    if (!r.has("rate")) r.fail("missing required field \"rate\"");
    layer.rate = r.number_at("rate", 0.0, 0.0, true);
    if (layer.rate >= 1) r.child("rate").fail("must be < 1 (the fraction of units dropped)");
  } else {
    r.expect_object({"type"});
  }
  return layer;
}

// nlohmann::json keeps the last of two equal keys in an object without a word; a model file
// with `"units": 10, ..., "units": 1000` would silently train the second. The parser callback
// sees every key before it is stored: track the keys of each open object and refuse a repeat,
// naming its JSON path in the form Reader uses (layers[2].units).
class DuplicateKeyCheck {
 public:
  explicit DuplicateKeyCheck(std::string source) : source_(std::move(source)) {}

  bool operator()(int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start: frames_.push_back({false, 0, {}, ""}); break;
      case json::parse_event_t::array_start: frames_.push_back({true, 0, {}, ""}); break;
      case json::parse_event_t::key: {
        Frame& f = frames_.back();
        f.key = parsed.get<std::string>();
        if (!f.keys.insert(f.key).second)
          BP_FAIL(source_ << ": " << path() << ": duplicate key \"" << f.key
                          << "\" (JSON would silently keep the last one)");
        break;
      }
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        frames_.pop_back();
        element_done();
        break;
      case json::parse_event_t::value: element_done(); break;
    }
    return true;
  }

 private:
  struct Frame {
    bool array;
    size_t index;                // arrays: the element being read
    std::set<std::string> keys;  // objects: the keys seen so far
    std::string key;             // objects: the key being read
  };
  void element_done() {
    if (!frames_.empty() && frames_.back().array) ++frames_.back().index;
  }
  std::string path() const {
    std::string p;
    for (const Frame& f : frames_)
      p += f.array ? "[" + std::to_string(f.index) + "]" : (p.empty() ? "" : ".") + f.key;
    return p;
  }

  std::string source_;
  std::vector<Frame> frames_;
};

// The name goes into run-directory names (runs/<time>-<data>-<name>-..., SWEEP/<data>-<name>-...):
// it must not be able to point anywhere else.
void check_model_name(const Reader& top, const std::string& name) {
  if (name.empty()) top.child("name").fail("must not be empty");
  if (name.find_first_of("/\\") != std::string::npos || name.find("..") != std::string::npos)
    top.child("name").fail("\"" + name +
                           "\" is not a plain name: no path separators (/ or \\) or \"..\" (it "
                           "names run directories)");
}

const std::set<std::string> kLayerTypes = {"dense",     "relu",      "flatten", "conv2d",
                                           "local2d",   "batchnorm", "maxpool2d", "dropout"};

}  // namespace

Feedback parse_feedback(const std::string& text) {
  std::string lower = text;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "symmetric") return Feedback::Symmetric;
  if (lower == "fa") return Feedback::Fa;
  if (lower == "learned") return Feedback::Learned;
  if (lower == "dfa") return Feedback::Dfa;
  BP_FAIL("unknown feedback \"" << text << "\" (known: symmetric, fa, learned, dfa)");
}

const char* feedback_name(Feedback feedback) {
  switch (feedback) {
    case Feedback::Symmetric: return "symmetric";
    case Feedback::Fa: return "fa";
    case Feedback::Learned: return "learned";
    case Feedback::Dfa: return "dfa";
  }
  return "?";
}

ModelSpec parse_model(const json& doc, const std::string& source) {
  const Reader top(doc, source, "");
  top.expect_object({"name", "description", "init_std", "l2", "layers", "output", "training",
                     "feedback", "feedback_decay"});
  ModelSpec spec;
  spec.name = top.string_at("name", "", true);
  check_model_name(top, spec.name);
  spec.description = top.string_at("description", "", false);
  const double default_std = top.number_at("init_std", 0.005, 0.0, true);
  const double default_l2 = top.number_at("l2", 0.0, 0.0, true);

  if (!top.has("layers")) top.fail("missing required field \"layers\"");
  const Reader layers = top.child("layers");
  if (!layers.node().is_array()) layers.fail("expected an array of layers");
  for (size_t i = 0; i < layers.node().size(); ++i) {
    const Reader r = layers.element(i);
    if (!r.node().is_object()) r.fail("expected a layer object");
    const std::string type = r.string_at("type", "", true);
    if (!kLayerTypes.count(type)) {
      std::string known;
      for (const auto& k : kLayerTypes) known += (known.empty() ? "" : ", ") + k;
      r.child("type").fail("unknown layer type \"" + type + "\" (known: " + known + ")");
    }
    if (type == "dense") {
      spec.layers.push_back(parse_dense(r, default_std, default_l2, false));
    } else if (type == "conv2d" || type == "local2d") {
      spec.layers.push_back(parse_conv(r, type, default_std, default_l2));
    } else {
      spec.layers.push_back(parse_simple(r, type));
    }
  }
  spec.output = top.has("output") ? parse_dense(top.child("output"), default_std, default_l2, true)
                                  : LayerSpec{"dense", 0, false, default_std, default_l2};

  if (top.has("training")) {
    const Reader t = top.child("training");
    t.expect_object({"batch_size", "lr"});
    spec.training.batch_size = t.positive_int_at("batch_size", spec.training.batch_size, false);
    spec.training.lr = t.number_at("lr", spec.training.lr, 0.0, false);
  }
  if (top.has("feedback")) {
    const std::string text = top.string_at("feedback", "symmetric", false);
    try {
      spec.feedback = parse_feedback(text);
    } catch (const Error&) {
      top.child("feedback").fail("expected \"symmetric\", \"fa\", \"learned\" or \"dfa\", got \"" + text +
                                     "\"");
    }
  }
  spec.feedback_decay = top.number_at("feedback_decay", 0.0, 0.0, true);
  if (spec.feedback_decay != 0 && spec.feedback != Feedback::Learned)
    top.child("feedback_decay").fail("only \"feedback\": \"learned\" has a feedback decay");
  return spec;
}

json model_to_json(const ModelSpec& spec) {
  json layers = json::array();
  for (const LayerSpec& l : spec.layers) {
    if (l.type == "dense")
      layers.push_back({{"type", "dense"}, {"units", l.units}, {"bias", l.bias},
                        {"init_std", l.init_std}, {"l2", l.l2}});
    else if (l.type == "conv2d" || l.type == "local2d")
      layers.push_back({{"type", l.type}, {"filters", l.filters}, {"kernel", {l.kernel_h, l.kernel_w}},
                        {"strides", {l.stride_h, l.stride_w}}, {"padding", l.padding},
                        {"bias", l.bias}, {"init_std", l.init_std}, {"l2", l.l2}});
    else if (l.type == "batchnorm")
      layers.push_back({{"type", l.type}, {"momentum", l.momentum}, {"epsilon", l.epsilon}});
    else if (l.type == "maxpool2d")
      layers.push_back({{"type", l.type}, {"pool", l.pool}, {"strides", l.pool_stride}});
    else if (l.type == "dropout")
      layers.push_back({{"type", l.type}, {"rate", l.rate}});
    else
      layers.push_back({{"type", l.type}});
  }
  return {{"name", spec.name},
          {"description", spec.description},
          {"layers", layers},
          {"output", {{"bias", spec.output.bias}, {"init_std", spec.output.init_std}, {"l2", spec.output.l2}}},
          {"training", {{"batch_size", spec.training.batch_size}, {"lr", spec.training.lr}}},
          {"feedback", feedback_name(spec.feedback)},
          {"feedback_decay", spec.feedback_decay}};
}

std::string models_directory() {
  if (const char* env = std::getenv("BRAINPROP_MODELS")) return env;
  return BRAINPROP_MODELS_DIR;
}

ModelSpec load_model(const std::string& name_or_path) {
  namespace fs = std::filesystem;
  const bool is_path = name_or_path.size() > 5 &&
                       name_or_path.compare(name_or_path.size() - 5, 5, ".json") == 0;
  const std::string path = is_path ? name_or_path : models_directory() + "/" + name_or_path + ".json";
  if (!fs::exists(path)) {
    std::string known;
    if (fs::is_directory(models_directory()))
      for (const auto& entry : fs::directory_iterator(models_directory()))
        if (entry.path().extension() == ".json")
          known += (known.empty() ? "" : ", ") + entry.path().stem().string();
    BP_FAIL(path << ": no such model file" << (is_path ? "" : " (known models: " + known + ")"));
  }
  std::ifstream in(path, std::ios::binary);
  BP_CHECK(in, path << ": cannot open");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  BP_CHECK(!in.bad(), path << ": read error");
  return parse_model_text(text, path);
}

ModelSpec parse_model_text(std::string_view text, const std::string& source) {
  json doc;
  try {
    doc = json::parse(text.begin(), text.end(), DuplicateKeyCheck(source));
  } catch (const json::exception& e) {
    // Not only parse_error: a number too large for a double (1e999) is an out_of_range.
    BP_FAIL(source << ": not valid JSON: " << e.what());
  }
  return parse_model(doc, source);
}

}  // namespace bp
