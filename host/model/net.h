// Net: the hidden layers of a ModelSpec plus its output dense layer, built for one backend,
// dtype and largest batch. forward() keeps every layer's input and output for backward().
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/dense_layer.h"
#include "model/layer_timing.h"

namespace bp {

class Net {
 public:
  Net(const ModelSpec& spec, const Shape& input_shape, int classes, Backend& be, int max_batch,
      DType dtype, uint64_t seed);
  // Parameters and buffers (batch-norm statistics): everything a checkpoint holds.
  std::vector<NamedParam> state_tensors();

  // Logits [B, classes] for x [B, input_shape...]; `step` keys the stochastic layers.
  Tensor forward(const Tensor& x, bool training, uint64_t step = 0);
  // EBP (and any dense output error): dlogits is dL_b/da_b per sample; the batch mean is taken
  // by the update's 1/B.
  void backward(const Tensor& dlogits, const UpdateArgs& update);
  // BrainProp: only unit action[b] of sample b carries the error err[b] = dL_b/da_b[s_b].
  void backward_selected(const Tensor& action, const Tensor& err, const UpdateArgs& update);

  std::vector<NamedParam> params();
  const Shape& input_shape() const { return input_shape_; }
  int classes() const { return classes_; }
  DType dtype() const { return dtype_; }
  int max_batch() const { return max_batch_; }
  Backend& backend() { return be_; }
  // Times every layer's forward and backward into `timing` (null: off).
  void set_layer_timing(LayerTiming* timing) { timing_ = timing; }

  // Parameter values on the host as raw bytes (for checkpoints) and back.
  std::map<std::string, std::vector<uint8_t>> state();
  void load_state(const std::map<std::string, std::vector<uint8_t>>& values,
                  const std::string& source);

 private:
  // Direct feedback alignment (--feedback dfa, docs/design.md "Feedback pathways"). The
  // weighted layers cut the hidden stack into segments; segment l runs from weighted layer l
  // (bottom) up to the input of the next weighted layer above it (top; hidden_.size() means the
  // output layer). The output error enters there as e·D_l and goes down through the layers in
  // between to layer l, which updates from it and sends nothing further down.
  struct DfaSegment {
    size_t bottom = 0, top = 0;
    bool fused_gate = false;  // BrainProp: hidden_[top - 1] is a ReLU, gated in the gather
    Tensor matrix;            // D_l [classes, per-sample elements at top]: "<layer l>.dfa"
    Tensor feedback;          // the injected signal, shaped as the input at top, max_batch rows
    std::string name;         // "<layer l>.dfa", also the profiler name of the injection
  };
  void build_dfa(const ModelSpec& spec, const std::vector<Shape>& input_shapes);
  // The one place that chooses between direct feedback and the layer-by-layer pathway.
  bool uses_dfa(const UpdateArgs& update) const;
  // Sends the output error (dlogits for EBP, or action/err for BrainProp) into every segment.
  void backward_dfa(const Tensor* dlogits, const Tensor* action, const Tensor* err,
                    const UpdateArgs& update);
  void propagate_down(size_t top, Tensor feedback, const UpdateArgs& update, size_t bottom = 0);

  Backend& be_;
  LayerTiming* timing_ = nullptr;
  Shape input_shape_;
  int classes_;
  int max_batch_;
  DType dtype_;
  uint64_t seed_;
  std::vector<std::unique_ptr<Layer>> hidden_;
  DenseLayer output_;
  std::vector<Tensor> inputs_;  // inputs_[i]: input of hidden layer i; inputs_.back(): of output
  std::vector<Tensor> outputs_;
  std::vector<std::string> forward_names_, backward_names_;  // "dense1.forward", ...
  bool fuse_output_gate_ = false;  // a ReLU feeds the output: BrainProp gathers gated rows
  bool dfa_mode_ = false;          // --feedback dfa
  std::vector<DfaSegment> dfa_;    // dfa only, top segment first
};

}  // namespace bp
