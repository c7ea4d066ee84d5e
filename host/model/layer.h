// Layers: the graph's nodes. A layer owns its parameters and its output buffers (sized for
// the largest batch), runs its forward pass, and in its backward pass turns the feedback
// arriving at its output into the feedback for the layer below and updates its own
// parameters in place (plain SGD: no gradient buffers, no separate optimizer pass).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "math/philox.h"
#include "math/sgd.h"
#include "model/model_spec.h"

namespace bp {

struct NamedParam {
  std::string name;  // "dense1.weight", as stored in checkpoints
  Tensor* tensor;
};

// Per-step update parameters; each layer adds its own L2 coefficient.
struct UpdateArgs {
  double lr = 0;
  int batch = 1;
  // Multiplies every layer's L2 (and learned feedback's decay): 0 leaves only the loss's
  // gradient in the update, as the update probe (train/update_probe.h) measures it.
  double l2_scale = 1.0;
  // Send feedback down through the forward weights whatever the net's feedback pathway, and
  // leave feedback weights alone: the update is then the true gradient of the rule's loss.
  bool true_gradient = false;
};

// The SGD coefficients of one layer's update: its L2 coefficient scaled by update.l2_scale.
inline SgdCoefficients layer_sgd(const UpdateArgs& update, double l2) {
  return sgd_coefficients(update.lr, l2 * update.l2_scale, update.batch);
}

// What a forward pass needs beyond its input: the mode, and for stochastic layers the
// (seed, step) their Philox draws are keyed by.
struct ForwardArgs {
  bool training = false;
  uint64_t seed = 0;
  uint64_t step = 0;
};

class Layer {
 public:
  virtual ~Layer() = default;
  virtual std::string type() const = 0;
  // Per-sample output shape, given the per-sample input shape passed to build().
  virtual Shape output_shape() const = 0;
  // Allocates parameters and buffers; init draws come from (seed, layer_index) on the
  // Philox init stream, so every backend and thread count starts from the same weights.
  virtual void build(Backend& be, const Shape& input_shape, int max_batch, DType dtype,
                     uint64_t seed, int layer_index) = 0;
  // y = layer(x); returns a view of the layer's own buffer (or of x, for reshapes).
  virtual Tensor forward(Backend& be, const Tensor& x, const ForwardArgs& args) = 0;
  // Given feedback dy at the output (and the x, y of the last forward), returns the feedback
  // for the input when need_dx, and updates the parameters in place.
  virtual Tensor backward(Backend& be, const Tensor& x, const Tensor& y, const Tensor& dy,
                          bool need_dx, const UpdateArgs& update) = 0;
  virtual std::vector<NamedParam> params() { return {}; }
  // State that is not trained by SGD but belongs in checkpoints (batch-norm moving averages).
  virtual std::vector<NamedParam> buffers() { return {}; }
  // The feedback pathway (set before build()); layers without weights ignore it. With fa or
  // learned a weighted layer holds B ("<layer>.feedback") and sends its feedback down through
  // B instead of W; feedback_params() lists B for checkpoints.
  virtual void set_feedback(Feedback, double /*decay*/) {}
  virtual std::vector<NamedParam> feedback_params() { return {}; }
  void set_name(std::string name) { name_ = std::move(name); }
  const std::string& name() const { return name_; }

 protected:
  std::string name_;
};

// Fills a parameter with N(0, std^2) from the Philox init stream (drawn on the host in
// double, rounded to the tensor's dtype, then copied to the backend). Feedback weights B use
// RngStream::kFeedbackInit, so B is independent of the W drawn for the same layer.
void init_normal(Backend& be, Tensor& param, double std, uint64_t seed, int layer_index,
                 RngStream stream = RngStream::kInit);

// A tensor of shape {batch, sample...}.
inline Shape batch_shape(int64_t batch, const Shape& sample) {
  Shape s{batch};
  s.insert(s.end(), sample.begin(), sample.end());
  return s;
}

std::unique_ptr<Layer> make_layer(const LayerSpec& spec);
std::unique_ptr<Layer> make_conv_layer(const LayerSpec& spec);  // conv2d, local2d
std::unique_ptr<Layer> make_batchnorm_layer(const LayerSpec& spec);
std::unique_ptr<Layer> make_maxpool_layer(const LayerSpec& spec);
std::unique_ptr<Layer> make_dropout_layer(const LayerSpec& spec);

}  // namespace bp
