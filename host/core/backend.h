// Backend: where tensors live and how the leaf ops run. The graph, heads, schedules and
// trainer in host/ call only this interface; each backend implements every op or throws
// (a backend never falls back to another silently). Matrices are row-major.
// Contracts: "=" overwrites the output, "+=" accumulates into it.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "math/conv_geometry.h"
#include "math/philox.h"

namespace bp {

// Running sums of one epoch or evaluation, kept where the backend computes so that they are
// read back once (not per batch). Indices into a float64 tensor of kStatCount entries.
enum Stat : int {
  kStatLoss = 0,      // sum of per-sample losses
  kStatCorrect = 1,   // samples whose argmax equals the label
  kStatReward = 2,    // BrainProp, REINFORCE: sum of rewards
  kStatExplored = 3,  // BrainProp, REINFORCE: trials whose action was not the greedy one
  kStatSamples = 4,   // samples seen
  kStatCount = 8
};

struct BrainPropHeadArgs {
  float epsilon;  // exploration probability of the Max-Boltzmann controller
  uint64_t seed;  // run seed
  uint64_t step;  // global training step (the Philox counter)
};

// The REINFORCE baseline's step size: b moves by this fraction of (batch mean reward - b) each
// step, a running average over about 1 / rate = 20 steps (fast enough to follow the reward
// rate as it climbs from 1/classes, slow enough to be nearly independent of one batch).
constexpr double kReinforceBaselineRate = 0.05;

struct ReinforceHeadArgs {
  uint64_t seed;  // run seed
  uint64_t step;  // global training step (the Philox counter)
  double baseline_rate = kReinforceBaselineRate;
};

// Precision of GEMMs and convolutions on backends with tensor cores. FP32 is the default:
// it matches the CPU reference to float rounding; TF32 (10-bit mantissa inputs, fp32
// accumulation) is several times faster on Ampere/Hopper and the paper's nets train the same.
enum class MathMode : uint8_t { FP32, TF32 };
MathMode parse_math_mode(const std::string& text);
const char* math_mode_name(MathMode mode);

// A recorded training step (see Backend::capture_step).
class StepGraph {
 public:
  virtual ~StepGraph() = default;
  // Runs the step again as if its ops were called with gather_batch's `first` moved by
  // `batches_ahead` times its batch rows and the Philox `step` arguments by `steps_ahead`.
  virtual void replay(int64_t batches_ahead, int64_t steps_ahead) = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual DeviceKind device() const = 0;
  virtual std::string name() const = 0;

  // --- memory ---
  virtual Tensor empty(const Shape& shape, DType dtype) = 0;
  virtual void copy_from_host(Tensor& dst, const void* src) = 0;  // dst = src (dst.bytes())
  virtual void copy_to_host(const Tensor& src, void* dst) = 0;    // dst = src
  virtual void fill(Tensor& t, double value) = 0;                 // t = value
  virtual void synchronize() = 0;

  // --- dense algebra ---
  // C = alpha * op(A) op(B) + beta * C, with op the optional transpose; 2-D tensors.
  virtual void gemm(bool trans_a, bool trans_b, double alpha, const Tensor& a, const Tensor& b,
                    double beta, Tensor& c) = 0;
  // y[r, :] += bias  (y viewed as [rows, bias.numel()])
  virtual void add_row_bias(Tensor& y, const Tensor& bias) = 0;
  // bias = decay * bias - step * sum_r dy[r, :]
  virtual void update_bias(Tensor& bias, const Tensor& dy, double decay, double step) = 0;
  // out[r, :] = scale[r] * w[index[r], :]   (the output layer's BrainProp feedback: a row gather)
  virtual void gather_rows_scaled(const Tensor& w, const Tensor& index, const Tensor& scale,
                                  Tensor& out) = 0;
  // out[r, :] = gate(y[r, :]) * scale[r] * w[index[r], :]: the same gather with the ReLU below
  // gating it in one pass (the fused BrainProp feedback of the layer under the output).
  virtual void gather_rows_scaled_gated(const Tensor& w, const Tensor& index, const Tensor& scale,
                                        const Tensor& y, Tensor& out) = 0;
  // w = decay * w;  w[index[r], :] -= step * scale[r] * x[r, :]  (its update: a scatter-add)
  virtual void scatter_update_rows(Tensor& w, const Tensor& index, const Tensor& scale,
                                   const Tensor& x, double decay, double step) = 0;
  // bias = decay * bias;  bias[index[r]] -= step * scale[r]
  virtual void scatter_update_bias(Tensor& bias, const Tensor& index, const Tensor& scale,
                                   double decay, double step) = 0;

  // --- activations ---
  virtual void relu_forward(const Tensor& x, Tensor& y) = 0;  // y = max(x, 0)
  // dx = dy * gate(y): the feedback gated by which units were active
  virtual void relu_feedback(const Tensor& dy, const Tensor& y, Tensor& dx) = 0;

  // --- heads (logits [B, C], labels int32 [B]) ---
  // BrainProp: action[b] (int32), output error err[b] = -(r_b - a_b[s_b]) (the gradient of the
  // per-sample loss at the selected unit); stats += loss, correct, reward, explored, samples.
  virtual void brainprop_head(const Tensor& logits, const Tensor& labels,
                              const BrainPropHeadArgs& args, Tensor& action, Tensor& err,
                              Tensor& stats) = 0;
  // REINFORCE: action s_b ~ softmax(a_b) (Philox keyed by seed, step, b), reward r_b = [s_b ==
  // label], grad[b, :] = -(r_b - base) (onehot(s_b) - softmax(a_b)), the gradient of the
  // per-sample loss -(r_b - base) log pi(s_b) with base = baseline[0] (float64 [1], on the
  // backend); then baseline[0] moves to base + baseline_rate (mean_b r_b - base), on the
  // backend, so graph replays and long runs need no host sync. stats += loss, correct
  // (argmax == label), reward, explored (s_b != argmax), samples.
  virtual void reinforce_head(const Tensor& logits, const Tensor& labels,
                              const ReinforceHeadArgs& args, Tensor& baseline, Tensor& grad,
                              Tensor& stats) = 0;
  // EBP: grad = softmax(a) - onehot(label); stats += loss, correct, samples.
  virtual void softmax_xent_head(const Tensor& logits, const Tensor& labels, Tensor& grad,
                                 Tensor& stats) = 0;
  // Evaluation: stats += correct (argmax == label), samples.
  virtual void count_correct(const Tensor& logits, const Tensor& labels, Tensor& stats) = 0;

  // --- convolutions, NHWC; weights [out_c, kh, kw, in_c] (shared) or
  //     [positions, out_c, kh*kw*in_c] (locally connected: one filter bank per output pixel) ---
  virtual void conv2d_forward(const Tensor& x, const Tensor& w, Tensor& y,
                              const Conv2dGeometry& g) = 0;                       // y = conv(x, w)
  virtual void conv2d_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx,
                                    const Conv2dGeometry& g) = 0;                 // dx = conv^T(dy, w)
  // w = decay * w - step * sum_b dL_b/dw  (the update written into the weights, no gradient buffer)
  virtual void conv2d_update(Tensor& w, const Tensor& dy, const Tensor& x, const Conv2dGeometry& g,
                             double decay, double step) = 0;
  virtual void local2d_forward(const Tensor& x, const Tensor& w, Tensor& y,
                               const Conv2dGeometry& g) = 0;
  virtual void local2d_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx,
                                     const Conv2dGeometry& g) = 0;
  virtual void local2d_update(Tensor& w, const Tensor& dy, const Tensor& x, const Conv2dGeometry& g,
                              double decay, double step) = 0;
  // y[..., c] += bias[c] for the last axis; and bias = decay * bias - step * sum dy[..., c]
  // (add_row_bias / update_bias above do exactly this with rows = all leading elements).

  // --- batch normalisation over every axis but the last (channels) ---
  // Training: batch statistics; saves mean and 1/sqrt(var + eps) for backward and moves the
  // running averages (momentum, unbiased variance).
  virtual void batchnorm_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                       Tensor& y, Tensor& saved_mean, Tensor& saved_inv_std,
                                       Tensor& running_mean, Tensor& running_var, double momentum,
                                       double epsilon) = 0;
  virtual void batchnorm_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                      const Tensor& running_mean, const Tensor& running_var,
                                      double epsilon, Tensor& y) = 0;
  // dx (when defined) from dy, then gamma/beta updated in place (decay, step as SGD).
  virtual void batchnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& saved_mean,
                                  const Tensor& saved_inv_std, Tensor& gamma, Tensor& beta,
                                  Tensor* dx, double decay, double step) = 0;

  // --- pooling and dropout ---
  virtual void maxpool2d_forward(const Tensor& x, Tensor& y, const Pool2dGeometry& g) = 0;
  // dx = 0, then each dy goes to the first maximum of its window.
  virtual void maxpool2d_backward(const Tensor& dy, const Tensor& x, Tensor& dx,
                                  const Pool2dGeometry& g) = 0;
  // y = x * mask (Keras rate semantics); the mask comes from (seed, step, layer).
  virtual void dropout_apply(const Tensor& x, Tensor& y, float rate, uint64_t seed, uint64_t step,
                             uint32_t layer) = 0;

  // --- data ---
  // x[r, :] = images[order[first + r], :] / 255 and y[r] = labels[order[first + r]],
  // for r < x.dim(0). images uint8 [N, ...], labels int32 [N], order int32 [M].
  virtual void gather_batch(const Tensor& images, const Tensor& labels, const Tensor& order,
                            int64_t first, Tensor& x, Tensor& y) = 0;
  // order[0 .. order.numel()) = the seeded permutation of shuffle.h (Philox keys sorted with
  // the index as tie-break), made where the data lives.
  virtual void seeded_permutation(Tensor& order, uint64_t seed, RngStream stream,
                                  uint32_t round) = 0;

  // --- health checks ---
  // counts[slot] += the number of NaN and ±Inf elements of t (float32 or float64; counts is
  // float64 on this backend). The trainer checks every parameter this way once per epoch and
  // before every checkpoint, with one read-back for all. The default reads t back to the host.
  virtual void count_nonfinite(const Tensor& t, Tensor& counts, int64_t slot);
  // The argument check every backend's count_nonfinite makes.
  static void check_count_slot(const Tensor& counts, int64_t slot);

  // --- timing (benchmarks) ---
  // A mark on the backend's clock, after the ops issued so far, and the milliseconds between
  // two marks (waiting for them). The default is the host clock, right for a synchronous
  // backend; the CUDA backend records events. timing_reset() lets the backend reuse marks.
  virtual int64_t timing_mark();
  virtual double timing_elapsed_ms(int64_t from, int64_t to);
  virtual void timing_reset() {}

  // --- graphs (optional) ---
  // Records the ops `body` issues (without running them) as one replayable step; nullptr
  // where the backend cannot. Scalars such as learning rates are fixed at capture; the batch
  // offset and the step move with StepGraph::replay. The same ops must have run once outside
  // a capture with the same shapes, so that lazy set-up (algorithm choice, workspaces) is done.
  virtual std::unique_ptr<StepGraph> capture_step(const std::function<void()>& body) {
    (void)body;
    return nullptr;
  }
};

// The sizes of C[m, n] = op(A)[m, k] op(B)[k, n], after checking that the 2-D shapes agree
// (a bp::Error naming them otherwise). Every backend's gemm starts here.
struct GemmDims {
  int64_t m, n, k;
};
GemmDims gemm_dims(bool trans_a, bool trans_b, const Tensor& a, const Tensor& b, const Tensor& c);

std::unique_ptr<Backend> make_cpu_backend(int threads);
// The CUDA backend on device `device`; throws with the reason where the build has no CUDA or
// no such device exists.
std::unique_ptr<Backend> make_cuda_backend(int device, MathMode math);
// Whether a CUDA device can be used; `why` gets the reason when not.
bool cuda_backend_available(std::string* why);

// One visible CUDA device and its memory, for placing runs (train/memory_estimate.h).
struct GpuInfo {
  int index = 0;             // CUDA device index (as CUDA_VISIBLE_DEVICES numbers them)
  std::string name;          // "NVIDIA H200"
  uint64_t total_bytes = 0;  // cudaMemGetInfo's total (what the device has)
  uint64_t free_bytes = 0;   // cudaMemGetInfo's free: what other processes (and this one) leave
};
// Every visible CUDA device with its total and free memory; empty, with the reason in `why`,
// where the build has no CUDA or no device is found. Measuring free memory makes (or reuses)
// the primary CUDA context of each device in this process, which stays until it exits (about
// 0.5 GiB per GPU on a real device): the free figure is measured after it, so it already
// leaves room for it. A device whose memory cannot be read has free_bytes 0 and its reason
// appended to `why`.
std::vector<GpuInfo> cuda_devices(std::string* why);

}  // namespace bp
