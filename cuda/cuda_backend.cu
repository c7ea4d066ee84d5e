// The CUDA backend: every Backend op on one GPU and one stream. GEMMs through cuBLAS (the
// weight updates write into W with beta = decay, alpha = -step), shared-weight convolutions
// through cuDNN, locally connected layers and everything element-wise through our kernels
// (kernels/cuda), whose per-element math is the CPU's (kernels/math). float32 only (float64
// for the stats). Nothing here synchronises with the host except the copies to the host and
// synchronize(); a step can be recorded as a CUDA graph (capture_step).
#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "core/backend.h"
#include "cuda/local2d.h"
#include "cuda/ops.h"
#include "cuda_check.h"
#include "cudnn_conv.h"
#include "device_context.h"
#include "device_info.h"

namespace bp {
namespace {

using cuda::DeviceContext;

void check_cuda(const Tensor& t, const char* op, const char* what) {
  BP_CHECK(t.defined(), op << ": " << what << " is not allocated");
  BP_CHECK(t.device() == DeviceKind::CUDA,
           op << ": " << what << " lives on " << device_name(t.device())
              << "; the CUDA backend needs it in GPU memory (created by this backend)");
}

const float* f32(const Tensor& t, const char* op, const char* what) {
  check_cuda(t, op, what);
  BP_CHECK(t.dtype() == DType::F32, op << ": " << what << " is " << dtype_name(t.dtype())
                                       << "; the CUDA backend computes in float32");
  return static_cast<const float*>(t.raw());
}
float* f32(Tensor& t, const char* op, const char* what) {
  return const_cast<float*>(f32(static_cast<const Tensor&>(t), op, what));
}
const int32_t* i32(const Tensor& t, const char* op, const char* what) {
  check_cuda(t, op, what);
  BP_CHECK(t.dtype() == DType::I32, op << ": " << what << " must be int32, is "
                                       << dtype_name(t.dtype()));
  return static_cast<const int32_t*>(t.raw());
}
double* stats_ptr(Tensor& t, const char* op) {
  check_cuda(t, op, "stats");
  BP_CHECK(t.dtype() == DType::F64 && t.numel() >= kStatCount, op << ": stats must be float64 ["
                                                                   << kStatCount << "]");
  return static_cast<double*>(t.raw());
}

class CudaStepGraph final : public StepGraph {
 public:
  CudaStepGraph(std::shared_ptr<DeviceContext> ctx, cudaGraphExec_t exec)
      : ctx_(std::move(ctx)), exec_(exec) {}
  ~CudaStepGraph() override { cudaGraphExecDestroy(exec_); }
  void replay(int64_t batches_ahead, int64_t steps_ahead) override {
    cuda::set_replay_offsets(ctx_->replay_offsets_storage(), batches_ahead, steps_ahead,
                             ctx_->stream());
    BP_CUDA_CHECK(cudaGraphLaunch(exec_, ctx_->stream()));
  }

 private:
  std::shared_ptr<DeviceContext> ctx_;
  cudaGraphExec_t exec_;
};

class CudaBackend final : public Backend {
 public:
  CudaBackend(int device, MathMode math) : ctx_(std::make_shared<DeviceContext>(device, math)) {}
  ~CudaBackend() override {
    convolutions_.reset();
    cudaStreamSynchronize(ctx_->stream());
    for (cudaEvent_t e : events_) cudaEventDestroy(e);
  }

  DeviceKind device() const override { return DeviceKind::CUDA; }
  std::string name() const override {
    return "cuda (" + ctx_->device_name() + ", " + math_mode_name(ctx_->math()) + ")";
  }

  // --- memory ---
  Tensor empty(const Shape& shape, DType dtype) override {
    auto storage = std::make_shared<Storage>();
    const size_t bytes = static_cast<size_t>(shape_elements(shape)) * dtype_size(dtype);
    storage->data = ctx_->allocate(bytes, "tensor " + shape_string(shape));
    storage->bytes = bytes;
    storage->device = DeviceKind::CUDA;
    std::shared_ptr<DeviceContext> ctx = ctx_;  // memory goes back before the stream does
    storage->release = [ctx](void* p) { ctx->release(p); };
    return Tensor(std::move(storage), shape, dtype);
  }

  void copy_from_host(Tensor& dst, const void* src) override {
    check_cuda(dst, "copy_from_host", "destination");
    BP_CHECK(!ctx_->capturing(), "copy_from_host inside a graph capture");
    if (!dst.bytes()) return;
    BP_CUDA_CHECK(cudaMemcpyAsync(dst.raw(), src, dst.bytes(), cudaMemcpyHostToDevice, ctx_->stream()));
    BP_CUDA_CHECK(cudaStreamSynchronize(ctx_->stream()));  // src may go away after we return
  }

  void copy_to_host(const Tensor& src, void* dst) override {
    check_cuda(src, "copy_to_host", "source");
    BP_CHECK(!ctx_->capturing(), "copy_to_host inside a graph capture");
    if (!src.bytes()) return;
    BP_CUDA_CHECK(cudaMemcpyAsync(dst, src.raw(), src.bytes(), cudaMemcpyDeviceToHost, ctx_->stream()));
    BP_CUDA_CHECK(cudaStreamSynchronize(ctx_->stream()));
  }

  void fill(Tensor& t, double value) override {
    check_cuda(t, "fill", "target");
    const cudaStream_t s = ctx_->stream();
    switch (t.dtype()) {
      case DType::F32: cuda::fill_f32(t.data<float>(), t.numel(), float(value), s); break;
      case DType::F64: cuda::fill_f64(t.data<double>(), t.numel(), value, s); break;
      case DType::I32: cuda::fill_i32(t.data<int32_t>(), t.numel(), int32_t(value), s); break;
      case DType::U8: cuda::fill_u8(t.data<uint8_t>(), t.numel(), uint8_t(value), s); break;
    }
  }

  void synchronize() override { BP_CUDA_CHECK(cudaStreamSynchronize(ctx_->stream())); }

  // --- dense algebra ---
  void gemm(bool ta, bool tb, double alpha, const Tensor& a, const Tensor& b, double beta,
            Tensor& c) override {
    const float* pa = f32(a, "gemm", "A");
    const float* pb = f32(b, "gemm", "B");
    float* pc = f32(c, "gemm", "C");
    const auto [m, n, k] = gemm_dims(ta, tb, a, b, c);
    if (m == 0 || n == 0) return;
    // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
    const float al = float(alpha), be = float(beta);
    BP_CUBLAS_CHECK(cublasSgemm(ctx_->cublas(), tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                                ta ? CUBLAS_OP_T : CUBLAS_OP_N, int(n), int(m), int(k), &al, pb,
                                int(b.dim(1)), pa, int(a.dim(1)), &be, pc, int(n)));
  }

  void add_row_bias(Tensor& y, const Tensor& bias) override {
    const int64_t cols = bias.numel();
    BP_CHECK(cols > 0 && y.numel() % cols == 0, "add_row_bias: " << shape_string(y.shape())
                                                                 << " is not rows of " << cols);
    cuda::add_row_bias(f32(y, "add_row_bias", "y"), f32(bias, "add_row_bias", "bias"),
                       y.numel() / cols, cols, ctx_->stream());
  }

  void update_bias(Tensor& bias, const Tensor& dy, double decay, double step) override {
    const int64_t cols = bias.numel(), rows = dy.numel() / cols;
    BP_CHECK(rows * cols == dy.numel(), "update_bias: " << shape_string(dy.shape())
                                                        << " is not rows of " << cols);
    double* ws = workspace_doubles(cuda::column_workspace_doubles(rows, cols));
    cuda::update_bias(f32(bias, "update_bias", "bias"), f32(dy, "update_bias", "dy"), rows, cols,
                      float(decay), float(step), ws, ctx_->stream());
  }

  void gather_rows_scaled(const Tensor& w, const Tensor& index, const Tensor& scale,
                          Tensor& out) override {
    const int64_t rows = out.dim(0), cols = w.dim(1);
    BP_CHECK(out.row_elements() == cols && index.numel() >= rows && scale.numel() >= rows,
             "gather_rows_scaled: shapes do not agree");
    cuda::gather_rows_scaled(f32(w, "gather_rows_scaled", "w"), i32(index, "gather_rows_scaled", "index"),
                             f32(scale, "gather_rows_scaled", "scale"), nullptr,
                             f32(out, "gather_rows_scaled", "out"), rows, cols, ctx_->stream());
  }

  void gather_rows_scaled_gated(const Tensor& w, const Tensor& index, const Tensor& scale,
                                const Tensor& y, Tensor& out) override {
    const char* op = "gather_rows_scaled_gated";
    const int64_t rows = out.dim(0), cols = w.dim(1);
    BP_CHECK(out.row_elements() == cols && y.numel() == out.numel() && index.numel() >= rows &&
                 scale.numel() >= rows,
             op << ": shapes do not agree");
    cuda::gather_rows_scaled(f32(w, op, "w"), i32(index, op, "index"), f32(scale, op, "scale"),
                             f32(y, op, "gate"), f32(out, op, "out"), rows, cols, ctx_->stream());
  }

  void scatter_update_rows(Tensor& w, const Tensor& index, const Tensor& scale, const Tensor& x,
                           double decay, double step) override {
    const char* op = "scatter_update_rows";
    const int64_t units = w.dim(0), cols = w.dim(1), rows = x.dim(0);
    BP_CHECK(x.row_elements() == cols, op << ": input width " << x.row_elements() << " != " << cols);
    cuda::scatter_update_rows(f32(w, op, "w"), i32(index, op, "index"), f32(scale, op, "scale"),
                              f32(x, op, "x"), units, cols, rows, float(decay), float(step),
                              ctx_->stream());
  }

  void scatter_update_bias(Tensor& bias, const Tensor& index, const Tensor& scale, double decay,
                           double step) override {
    const char* op = "scatter_update_bias";
    cuda::scatter_update_bias(f32(bias, op, "bias"), i32(index, op, "index"),
                              f32(scale, op, "scale"), bias.numel(), index.numel(), float(decay),
                              float(step), ctx_->stream());
  }

  // --- activations ---
  void relu_forward(const Tensor& x, Tensor& y) override {
    cuda::relu_forward(f32(x, "relu_forward", "x"), f32(y, "relu_forward", "y"), x.numel(),
                       ctx_->stream());
  }
  void relu_feedback(const Tensor& dy, const Tensor& y, Tensor& dx) override {
    cuda::relu_feedback(f32(dy, "relu_feedback", "dy"), f32(y, "relu_feedback", "y"),
                        f32(dx, "relu_feedback", "dx"), dy.numel(), ctx_->stream());
  }

  // --- heads ---
  void brainprop_head(const Tensor& logits, const Tensor& labels, const BrainPropHeadArgs& args,
                      Tensor& action, Tensor& err, Tensor& stats) override {
    const char* op = "brainprop_head";
    const cuda::StepArg step{int64_t(args.step), 1, ctx_->replay_offsets(), 1};
    cuda::brainprop_head(f32(logits, op, "logits"), i32(labels, op, "labels"), logits.dim(0),
                         int(logits.dim(1)), args.epsilon, args.seed, step,
                         const_cast<int32_t*>(i32(action, op, "action")), f32(err, op, "err"),
                         stats_ptr(stats, op), ctx_->stream());
  }
  void reinforce_head(const Tensor& logits, const Tensor& labels, const ReinforceHeadArgs& args,
                      Tensor& baseline, Tensor& grad, Tensor& stats) override {
    const char* op = "reinforce_head";
    check_cuda(baseline, op, "baseline");
    BP_CHECK(baseline.dtype() == DType::F64 && baseline.numel() == 1,
             op << ": baseline must be float64 [1]");
    // The step moves with graph replay like BrainProp's; the baseline lives on the device.
    const cuda::StepArg step{int64_t(args.step), 1, ctx_->replay_offsets(), 1};
    cuda::reinforce_head(f32(logits, op, "logits"), i32(labels, op, "labels"), logits.dim(0),
                         int(logits.dim(1)), args.seed, step, args.baseline_rate,
                         static_cast<double*>(baseline.raw()), f32(grad, op, "grad"),
                         stats_ptr(stats, op), ctx_->stream());
  }
  void softmax_xent_head(const Tensor& logits, const Tensor& labels, Tensor& grad,
                         Tensor& stats) override {
    const char* op = "softmax_xent_head";
    cuda::softmax_xent_head(f32(logits, op, "logits"), i32(labels, op, "labels"), logits.dim(0),
                            int(logits.dim(1)), f32(grad, op, "grad"), stats_ptr(stats, op),
                            ctx_->stream());
  }
  void count_nonfinite(const Tensor& t, Tensor& counts, int64_t slot) override {
    const char* op = "count_nonfinite";
    check_cuda(counts, op, "counts");
    check_count_slot(counts, slot);
    double* ws = workspace_doubles(cuda::column_workspace_doubles(t.numel(), 1));
    cuda::count_nonfinite(f32(t, op, "tensor"), t.numel(), static_cast<double*>(counts.raw()), slot,
                          ws, ctx_->stream());
  }
  void count_correct(const Tensor& logits, const Tensor& labels, Tensor& stats) override {
    const char* op = "count_correct";
    cuda::count_correct(f32(logits, op, "logits"), i32(labels, op, "labels"), logits.dim(0),
                        int(logits.dim(1)), stats_ptr(stats, op), ctx_->stream());
  }

  // --- convolutions ---
  void conv2d_forward(const Tensor& x, const Tensor& w, Tensor& y, const Conv2dGeometry& g) override {
    convolutions().forward(f32(x, "conv2d_forward", "x"), f32(w, "conv2d_forward", "w"),
                           f32(y, "conv2d_forward", "y"), with_batch(g, x));
  }
  void conv2d_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx,
                            const Conv2dGeometry& g) override {
    const char* op = "conv2d_backward_data";
    convolutions().backward_data(f32(dy, op, "dy"), f32(w, op, "w"), f32(dx, op, "dx"),
                                 with_batch(g, dx));
  }
  void conv2d_update(Tensor& w, const Tensor& dy, const Tensor& x, const Conv2dGeometry& g,
                     double decay, double step) override {
    const char* op = "conv2d_update";
    convolutions().update(f32(w, op, "w"), f32(dy, op, "dy"), f32(x, op, "x"), with_batch(g, x),
                          float(decay), float(step));
  }
  void local2d_forward(const Tensor& x, const Tensor& w, Tensor& y, const Conv2dGeometry& g) override {
    cuda::local2d_forward(f32(x, "local2d_forward", "x"), f32(w, "local2d_forward", "w"),
                          f32(y, "local2d_forward", "y"), with_batch(g, x), ctx_->stream());
  }
  void local2d_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx,
                             const Conv2dGeometry& g) override {
    const char* op = "local2d_backward_data";
    cuda::local2d_backward_data(f32(dy, op, "dy"), f32(w, op, "w"), f32(dx, op, "dx"),
                                with_batch(g, dx), ctx_->stream());
  }
  void local2d_update(Tensor& w, const Tensor& dy, const Tensor& x, const Conv2dGeometry& g,
                      double decay, double step) override {
    const char* op = "local2d_update";
    cuda::local2d_update(f32(w, op, "w"), f32(dy, op, "dy"), f32(x, op, "x"), with_batch(g, x),
                         float(decay), float(step), ctx_->stream());
  }

  // --- batch normalisation ---
  void batchnorm_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& y,
                               Tensor& saved_mean, Tensor& saved_inv_std, Tensor& running_mean,
                               Tensor& running_var, double momentum, double epsilon) override {
    const char* op = "batchnorm_forward_train";
    const int64_t channels = gamma.numel(), rows = x.numel() / channels;
    BP_CHECK(rows >= 1, "batchnorm needs at least one row");
    double* ws = workspace_doubles(cuda::batchnorm_workspace_doubles(rows, channels));
    cuda::batchnorm_forward_train(f32(x, op, "x"), f32(gamma, op, "gamma"), f32(beta, op, "beta"),
                                  f32(y, op, "y"), f32(saved_mean, op, "saved_mean"),
                                  f32(saved_inv_std, op, "saved_inv_std"),
                                  f32(running_mean, op, "running_mean"),
                                  f32(running_var, op, "running_var"), rows, channels,
                                  float(momentum), epsilon, ws, ctx_->stream());
  }
  void batchnorm_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                              const Tensor& running_mean, const Tensor& running_var, double epsilon,
                              Tensor& y) override {
    const char* op = "batchnorm_forward_eval";
    const int64_t channels = gamma.numel();
    cuda::batchnorm_forward_eval(f32(x, op, "x"), f32(gamma, op, "gamma"), f32(beta, op, "beta"),
                                 f32(running_mean, op, "running_mean"),
                                 f32(running_var, op, "running_var"), x.numel() / channels,
                                 channels, epsilon, f32(y, op, "y"), ctx_->stream());
  }
  void batchnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& saved_mean,
                          const Tensor& saved_inv_std, Tensor& gamma, Tensor& beta, Tensor* dx,
                          double decay, double step) override {
    const char* op = "batchnorm_backward";
    const int64_t channels = gamma.numel(), rows = x.numel() / channels;
    double* ws = workspace_doubles(cuda::batchnorm_workspace_doubles(rows, channels));
    cuda::batchnorm_backward(f32(dy, op, "dy"), f32(x, op, "x"), f32(saved_mean, op, "saved_mean"),
                             f32(saved_inv_std, op, "saved_inv_std"), f32(gamma, op, "gamma"),
                             f32(beta, op, "beta"), dx ? f32(*dx, op, "dx") : nullptr, rows,
                             channels, float(decay), float(step), ws, ctx_->stream());
  }

  // --- pooling and dropout ---
  void maxpool2d_forward(const Tensor& x, Tensor& y, const Pool2dGeometry& g) override {
    Pool2dGeometry at = g;
    at.batch = int(x.dim(0));
    cuda::maxpool2d_forward(f32(x, "maxpool2d_forward", "x"), f32(y, "maxpool2d_forward", "y"),
                            at, ctx_->stream());
  }
  void maxpool2d_backward(const Tensor& dy, const Tensor& x, Tensor& dx,
                          const Pool2dGeometry& g) override {
    const char* op = "maxpool2d_backward";
    Pool2dGeometry at = g;
    at.batch = int(x.dim(0));
    cuda::maxpool2d_backward(f32(dy, op, "dy"), f32(x, op, "x"), f32(dx, op, "dx"), at,
                             ctx_->stream());
  }
  void dropout_apply(const Tensor& x, Tensor& y, float rate, uint64_t seed, uint64_t step,
                     uint32_t layer) override {
    const cuda::StepArg at{int64_t(step), 1, ctx_->replay_offsets(), 1};
    cuda::dropout_apply(f32(x, "dropout_apply", "x"), f32(y, "dropout_apply", "y"), x.numel(), rate,
                        seed, at, layer, ctx_->stream());
  }

  // --- data ---
  void gather_batch(const Tensor& images, const Tensor& labels, const Tensor& order, int64_t first,
                    Tensor& x, Tensor& y) override {
    const char* op = "gather_batch";
    const int64_t rows = x.dim(0), width = images.row_elements();
    BP_CHECK(x.row_elements() == width, op << ": batch row " << x.row_elements()
                                           << " != image size " << width);
    BP_CHECK(first + rows <= order.numel(), op << ": batch runs past the epoch order");
    check_cuda(images, op, "images");
    BP_CHECK(images.dtype() == DType::U8, op << ": images must be uint8");
    const cuda::StepArg at{first, rows, ctx_->replay_offsets(), 0};
    cuda::gather_batch(static_cast<const uint8_t*>(images.raw()), i32(labels, op, "labels"),
                       i32(order, op, "order"), at, rows, width, f32(x, op, "x"),
                       const_cast<int32_t*>(i32(y, op, "y")), ctx_->stream());
  }

  void seeded_permutation(Tensor& order, uint64_t seed, RngStream stream, uint32_t round) override {
    const char* op = "seeded_permutation";
    BP_CHECK(!ctx_->capturing(), op << " inside a graph capture");
    const int64_t count = order.numel();
    BP_CHECK(count < (int64_t(1) << 31), "cannot order " << count << " items");
    if (count == 0) return;
    void* keys = ctx_->allocate(size_t(count) * sizeof(uint64_t), "shuffle keys");
    try {
      cuda::seeded_permutation(const_cast<int32_t*>(i32(order, op, "order")), count, seed, stream,
                               round, static_cast<uint64_t*>(keys), ctx_->stream());
    } catch (...) {
      ctx_->release(keys);
      throw;
    }
    ctx_->release(keys);
  }

  // --- timing: CUDA events, reused after timing_reset() ---
  int64_t timing_mark() override {
    if (next_event_ == events_.size()) {
      cudaEvent_t e = nullptr;
      BP_CUDA_CHECK(cudaEventCreate(&e));
      events_.push_back(e);
    }
    BP_CUDA_CHECK(cudaEventRecord(events_[next_event_], ctx_->stream()));
    return int64_t(next_event_++);
  }
  double timing_elapsed_ms(int64_t from, int64_t to) override {
    BP_CHECK(from >= 0 && to >= 0 && size_t(std::max(from, to)) < next_event_,
             "timing marks " << from << ", " << to << " were not recorded");
    BP_CUDA_CHECK(cudaEventSynchronize(events_[size_t(to)]));
    float ms = 0;
    BP_CUDA_CHECK(cudaEventElapsedTime(&ms, events_[size_t(from)], events_[size_t(to)]));
    return double(ms);
  }
  void timing_reset() override { next_event_ = 0; }

  // --- graphs ---
  std::unique_ptr<StepGraph> capture_step(const std::function<void()>& body) override {
    const cudaStream_t s = ctx_->stream();
    BP_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    ctx_->set_capturing(true);
    cudaGraph_t graph = nullptr;
    try {
      body();
    } catch (...) {
      ctx_->set_capturing(false);
      cudaStreamEndCapture(s, &graph);
      if (graph) cudaGraphDestroy(graph);
      cudaGetLastError();
      throw;
    }
    ctx_->set_capturing(false);
    BP_CUDA_CHECK(cudaStreamEndCapture(s, &graph));
    cudaGraphExec_t exec = nullptr;
    const cudaError_t status = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    BP_CUDA_CHECK(status);
    return std::make_unique<CudaStepGraph>(ctx_, exec);
  }

 private:
  // The geometry with the batch of the tensor actually passed (a partial last batch).
  static Conv2dGeometry with_batch(Conv2dGeometry g, const Tensor& t) {
    g.batch = int(t.dim(0));
    return g;
  }
  double* workspace_doubles(int64_t count) {
    return static_cast<double*>(ctx_->workspace(size_t(count) * sizeof(double)));
  }
  cuda::CudnnConvolutions& convolutions() {
    if (!convolutions_) convolutions_ = std::make_unique<cuda::CudnnConvolutions>(*ctx_);
    return *convolutions_;
  }

  std::shared_ptr<DeviceContext> ctx_;
  std::unique_ptr<cuda::CudnnConvolutions> convolutions_;
  std::vector<cudaEvent_t> events_;
  size_t next_event_ = 0;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(int device, MathMode math) {
  std::string why;
  BP_CHECK(cuda_backend_available(&why), "--backend cuda: " << why);
  return std::make_unique<CudaBackend>(device, math);
}

bool cuda_backend_available(std::string* why) {
  const cuda::CudaInventory inv = cuda::query_cuda();
  if (inv.devices.empty()) {
    if (why) *why = "no usable CUDA device (" + inv.why_no_device + ")";
    return false;
  }
  if (!inv.devices[0].usable) {  // the backend runs on device 0
    if (why) *why = inv.devices[0].name + ": " + inv.devices[0].why_unusable;
    return false;
  }
  return true;
}

}  // namespace bp
