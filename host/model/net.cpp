#include "model/net.h"

#include <cstring>

#include "core/trace.h"

namespace bp {

namespace {
const std::string kOutputForward = "output.forward";
const std::string kOutputBackward = "output.backward";
const std::string kOutputFusedBackward = "output+relu.backward (fused gate)";

// One layer's forward or backward: a named NVTX range, and a timed span when timing is on.
class LayerScope {
 public:
  LayerScope(LayerTiming* timing, const std::string& name)
      : trace_(name), timing_(timing), name_(name) {
    if (timing_) timing_->begin(name_);
  }
  ~LayerScope() {
    if (timing_) timing_->end(name_);
  }
  LayerScope(const LayerScope&) = delete;
  LayerScope& operator=(const LayerScope&) = delete;

 private:
  TraceRange trace_;
  LayerTiming* timing_;
  const std::string& name_;  // one of the Net's names, which outlive the scope
};
}  // namespace

Net::Net(const ModelSpec& spec, const Shape& input_shape, int classes, Backend& be, int max_batch,
         DType dtype, uint64_t seed)
    : be_(be),
      input_shape_(input_shape),
      classes_(classes),
      max_batch_(max_batch),
      dtype_(dtype),
      seed_(seed),
      output_(classes, spec.output.bias, spec.output.init_std, spec.output.l2) {
  BP_CHECK(classes >= 2, "a classifier needs at least 2 classes, got " << classes);
  BP_CHECK(max_batch >= 1, "batch size must be >= 1, got " << max_batch);
  Shape shape = input_shape;
  std::map<std::string, int> per_type;
  for (const LayerSpec& ls : spec.layers) {
    auto layer = make_layer(ls);
    layer->set_name(ls.type + std::to_string(++per_type[ls.type]));
    layer->set_feedback(spec.feedback, spec.feedback_decay);
    layer->build(be, shape, max_batch, dtype, seed, static_cast<int>(hidden_.size()));
    shape = layer->output_shape();
    for (int64_t d : shape)
      BP_CHECK(d > 0, "layer " << layer->name() << " leaves an empty output " << shape_string(shape)
                               << " for input " << shape_string(input_shape));
    hidden_.push_back(std::move(layer));
  }
  output_.set_name("output");
  output_.set_feedback(spec.feedback, spec.feedback_decay);
  output_.build(be, shape, max_batch, dtype, seed, static_cast<int>(hidden_.size()));
  inputs_.resize(hidden_.size() + 1);
  outputs_.resize(hidden_.size());
  // Profiler range names, made once here rather than per layer and step.
  for (const auto& layer : hidden_) {
    forward_names_.push_back(layer->name() + ".forward");
    backward_names_.push_back(layer->name() + ".backward");
  }
  // A ReLU right under the output gates the selected rows of W as they are gathered (one
  // pass instead of two), and is then skipped on the way down.
  fuse_output_gate_ = !hidden_.empty() && hidden_.back()->type() == "relu";
}

Tensor Net::forward(const Tensor& x, bool training, uint64_t step) {
  const ForwardArgs args{training, seed_, step};
  BP_CHECK(x.dim(0) <= max_batch_, "batch of " << x.dim(0) << " exceeds the net's largest batch "
                                                << max_batch_);
  Tensor h = x;
  for (size_t i = 0; i < hidden_.size(); ++i) {
    LayerScope scope(timing_, forward_names_[i]);
    inputs_[i] = h;
    h = hidden_[i]->forward(be_, h, args);
    outputs_[i] = h;
  }
  inputs_.back() = h;
  LayerScope scope(timing_, kOutputForward);
  return output_.forward(be_, h, args);
}

void Net::propagate_down(size_t top, Tensor feedback, const UpdateArgs& update) {
  for (size_t i = top; i-- > 0;) {
    LayerScope scope(timing_, backward_names_[i]);
    feedback = hidden_[i]->backward(be_, inputs_[i], outputs_[i], feedback, i > 0, update);
  }
}

void Net::backward(const Tensor& dlogits, const UpdateArgs& update) {
  const bool need_dx = !hidden_.empty();
  Tensor fb;
  {
    LayerScope scope(timing_, kOutputBackward);
    fb = output_.backward(be_, inputs_.back(), Tensor(), dlogits, need_dx, update);
  }
  propagate_down(hidden_.size(), fb, update);
}

void Net::backward_selected(const Tensor& action, const Tensor& err, const UpdateArgs& update) {
  const bool need_dx = !hidden_.empty();
  Tensor fb;
  {
    LayerScope scope(timing_, fuse_output_gate_ ? kOutputFusedBackward : kOutputBackward);
    fb = output_.backward_selected(be_, inputs_.back(), action, err, need_dx, update,
                                   fuse_output_gate_ ? &outputs_.back() : nullptr);
  }
  propagate_down(hidden_.size() - (fuse_output_gate_ ? 1 : 0), fb, update);
}

std::vector<NamedParam> Net::params() {
  std::vector<NamedParam> all;
  for (auto& layer : hidden_)
    for (const NamedParam& p : layer->params()) all.push_back(p);
  for (const NamedParam& p : output_.params()) all.push_back(p);
  return all;
}

std::vector<NamedParam> Net::state_tensors() {
  std::vector<NamedParam> all = params();
  for (auto& layer : hidden_)
    for (const NamedParam& p : layer->buffers()) all.push_back(p);
  // fa/learned feedback weights B: state a resumed run needs, not needed for inference.
  for (auto& layer : hidden_)
    for (const NamedParam& p : layer->feedback_params()) all.push_back(p);
  for (const NamedParam& p : output_.feedback_params()) all.push_back(p);
  return all;
}

std::map<std::string, std::vector<uint8_t>> Net::state() {
  std::map<std::string, std::vector<uint8_t>> out;
  for (const NamedParam& p : state_tensors()) {
    std::vector<uint8_t> bytes(p.tensor->bytes());
    be_.copy_to_host(*p.tensor, bytes.data());
    out[p.name] = std::move(bytes);
  }
  return out;
}

void Net::load_state(const std::map<std::string, std::vector<uint8_t>>& values,
                     const std::string& source) {
  const std::vector<NamedParam> tensors = state_tensors();
  // A checkpoint of an fa/learned run holds "<layer>.feedback" tensors; a net that has no
  // feedback weights (evaluated with symmetric feedback) skips them.
  std::map<std::string, bool> have;
  for (const NamedParam& p : tensors) have[p.name] = true;
  size_t skipped = 0;
  const std::string suffix = ".feedback";
  for (const auto& item : values) {
    const std::string& name = item.first;
    if (!have.count(name) && name.size() > suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      ++skipped;
  }
  for (const NamedParam& p : tensors) {
    auto it = values.find(p.name);
    BP_CHECK(it != values.end(), source << ": missing parameter " << p.name);
    BP_CHECK(it->second.size() == p.tensor->bytes(),
             source << ": parameter " << p.name << " holds " << it->second.size()
                    << " bytes, the model needs " << p.tensor->bytes() << " ("
                    << shape_string(p.tensor->shape()) << " " << dtype_name(p.tensor->dtype()) << ")");
    be_.copy_from_host(*p.tensor, it->second.data());
  }
  BP_CHECK(values.size() == tensors.size() + skipped,
           source << ": holds " << values.size() << " tensors, the model has " << tensors.size());
}

}  // namespace bp
