#include "model/net.h"

#include <cstring>

#include "core/trace.h"

namespace bp {

namespace {
const std::string kOutputForward = "output.forward";
const std::string kOutputBackward = "output.backward";
const std::string kOutputFusedBackward = "output+relu.backward (fused gate)";

bool is_weighted(const Layer& layer) {
  return layer.type() == "dense" || layer.type() == "conv2d" || layer.type() == "local2d";
}

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
  std::vector<Shape> input_shapes;  // per-sample input of each hidden layer, then of the output
  std::map<std::string, int> per_type;
  // With dfa the layers hold no B: D belongs to the Net, and whenever a layer does send its
  // feedback down itself (the normal pathway) it goes through W.
  const Feedback layer_feedback = spec.feedback == Feedback::Dfa ? Feedback::Symmetric : spec.feedback;
  for (const LayerSpec& ls : spec.layers) {
    auto layer = make_layer(ls);
    layer->set_name(ls.type + std::to_string(++per_type[ls.type]));
    layer->set_feedback(layer_feedback, spec.feedback_decay);
    input_shapes.push_back(shape);
    layer->build(be, shape, max_batch, dtype, seed, static_cast<int>(hidden_.size()));
    shape = layer->output_shape();
    for (int64_t d : shape)
      BP_CHECK(d > 0, "layer " << layer->name() << " leaves an empty output " << shape_string(shape)
                               << " for input " << shape_string(input_shape));
    hidden_.push_back(std::move(layer));
  }
  output_.set_name("output");
  output_.set_feedback(layer_feedback, spec.feedback_decay);
  output_.build(be, shape, max_batch, dtype, seed, static_cast<int>(hidden_.size()));
  input_shapes.push_back(shape);
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
  if (spec.feedback == Feedback::Dfa) build_dfa(spec, input_shapes);
}

void Net::build_dfa(const ModelSpec& spec, const std::vector<Shape>& input_shapes) {
  dfa_mode_ = true;
  std::vector<size_t> weighted;
  for (size_t i = 0; i < hidden_.size(); ++i)
    if (is_weighted(*hidden_[i])) weighted.push_back(i);
  // Below the lowest weighted layer no feedback arrives: a layer there could not learn.
  const size_t lowest = weighted.empty() ? hidden_.size() : weighted.front();
  for (size_t i = 0; i < lowest; ++i)
    BP_CHECK(hidden_[i]->params().empty(),
             "--feedback dfa: layer " << hidden_[i]->name() << " has parameters but no weighted layer "
                                      << "below it, so no feedback would reach it");
  for (size_t k = weighted.size(); k-- > 0;) {
    DfaSegment seg;
    seg.bottom = weighted[k];
    seg.top = k + 1 < weighted.size() ? weighted[k + 1] : hidden_.size();
    seg.fused_gate = seg.top - 1 > seg.bottom && hidden_[seg.top - 1]->type() == "relu";
    seg.name = hidden_[seg.bottom]->name() + ".dfa";
    const Shape& at_top = input_shapes[seg.top];
    seg.matrix = be_.empty({classes_, shape_elements(at_top)}, dtype_);
    // D_l ~ N(0, s^2), s = sigma_above * n_output_inputs / n_top: sigma_above is the init std
    // of the weighted layer whose input receives the signal, n_top that input's per-sample size
    // and n_output_inputs the output layer's. Under the output D is then exactly fa's B of the
    // output layer; further down the signal is smaller the larger the tensor it enters, as the
    // error that backpropagation delivers there is. Chosen by measurement: s = sigma_above, and
    // sigma_above * sqrt(n_output_inputs / n_top), diverged (NaN in epoch 2) on conv with
    // BrainProp, where batch norm right under the injection point multiplies the signal by the
    // 1/std of very small activations. Drawn on the feedback stream with layer l's index:
    // independent of every W (and a dfa net has no B).
    const double sigma_above = seg.top == hidden_.size() ? spec.output.init_std : spec.layers[seg.top].init_std;
    const double n_top = double(shape_elements(at_top));
    const double n_output_inputs = double(shape_elements(input_shapes.back()));
    init_normal(be_, seg.matrix, sigma_above * n_output_inputs / n_top, seed_, static_cast<int>(seg.bottom),
                RngStream::kFeedbackInit);
    seg.feedback = be_.empty(batch_shape(max_batch_, at_top), dtype_);
    dfa_.push_back(std::move(seg));
  }
}

// UpdateArgs::true_gradient (the update probe) makes this false: a dfa net's layers hold no B,
// so the normal pathway is then plain symmetric backpropagation, D untouched.
bool Net::uses_dfa(const UpdateArgs& update) const { return dfa_mode_ && !update.true_gradient; }

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

// Layers top-1 down to bottom; the bottom one sends nothing further down when bottom > 0
// (the input layer's feedback is never needed).
void Net::propagate_down(size_t top, Tensor feedback, const UpdateArgs& update, size_t bottom) {
  for (size_t i = top; i-- > bottom;) {
    LayerScope scope(timing_, backward_names_[i]);
    feedback = hidden_[i]->backward(be_, inputs_[i], outputs_[i], feedback, i > bottom, update);
  }
}

void Net::backward_dfa(const Tensor* dlogits, const Tensor* action, const Tensor* err,
                       const UpdateArgs& update) {
  const int64_t batch = inputs_.back().dim(0);
  for (DfaSegment& seg : dfa_) {
    Tensor fb = seg.feedback.rows(batch);
    const bool fuse = !dlogits && seg.fused_gate;
    {
      LayerScope scope(timing_, seg.name);
      if (dlogits) {
        Tensor flat = fb.reshaped({batch, fb.row_elements()});
        be_.gemm(false, false, 1.0, *dlogits, seg.matrix, 0.0, flat);  // e D_l
      } else if (fuse) {
        be_.gather_rows_scaled_gated(seg.matrix, *action, *err, outputs_[seg.top - 1], fb);
      } else {
        be_.gather_rows_scaled(seg.matrix, *action, *err, fb);  // err_b D_l[s_b, :]
      }
    }
    propagate_down(seg.top - (fuse ? 1 : 0), fb, update, seg.bottom);
  }
}

void Net::backward(const Tensor& dlogits, const UpdateArgs& update) {
  const bool dfa = uses_dfa(update);
  const bool need_dx = !hidden_.empty() && !dfa;
  Tensor fb;
  {
    LayerScope scope(timing_, kOutputBackward);
    fb = output_.backward(be_, inputs_.back(), Tensor(), dlogits, need_dx, update);
  }
  if (dfa)
    backward_dfa(&dlogits, nullptr, nullptr, update);
  else
    propagate_down(hidden_.size(), fb, update);
}

void Net::backward_selected(const Tensor& action, const Tensor& err, const UpdateArgs& update) {
  const bool dfa = uses_dfa(update);
  const bool need_dx = !hidden_.empty() && !dfa;
  const bool fuse = fuse_output_gate_ && !dfa;
  Tensor fb;
  {
    LayerScope scope(timing_, fuse ? kOutputFusedBackward : kOutputBackward);
    fb = output_.backward_selected(be_, inputs_.back(), action, err, need_dx, update,
                                   fuse ? &outputs_.back() : nullptr);
  }
  if (dfa)
    backward_dfa(nullptr, &action, &err, update);
  else
    propagate_down(hidden_.size() - (fuse ? 1 : 0), fb, update);
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
  // dfa's D, likewise, in layer order.
  for (auto seg = dfa_.rbegin(); seg != dfa_.rend(); ++seg) all.push_back({seg->name, &seg->matrix});
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
  // A checkpoint of an fa/learned run holds "<layer>.feedback" tensors, one of a dfa run
  // "<layer>.dfa"; a net that has no such feedback weights (evaluated with another pathway)
  // skips them.
  std::map<std::string, bool> have;
  for (const NamedParam& p : tensors) have[p.name] = true;
  auto ends_with = [](const std::string& name, const std::string& suffix) {
    return name.size() > suffix.size() &&
           name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  size_t skipped = 0;
  for (const auto& item : values) {
    const std::string& name = item.first;
    if (!have.count(name) && (ends_with(name, ".feedback") || ends_with(name, ".dfa"))) ++skipped;
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
