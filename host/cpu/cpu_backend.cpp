// The CPU backend: the reference every other backend is tested against. OpenBLAS for the
// GEMMs, OpenMP for element-wise loops, the shared per-element math from kernels/math.
// float32 for training; float64 too, for the finite-difference gradient checks.
// Reductions into the stats are serial over samples so results never depend on threads.
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/backend.h"
#include "cpu/conv_ops.h"
#include "cpu/norm_pool_ops.h"
#include "math/activation.h"
#include "math/finite.h"
#include "math/heads.h"
#include "math/shuffle_key.h"
#include "cpu/blas_gemm.h"
#include "cpu/dispatch.h"

namespace bp {
namespace {

using cpu::dispatch_float;

void check_cpu(const Tensor& t, const char* what) {
  BP_CHECK(t.defined(), what << " is not allocated");
  BP_CHECK(t.device() == DeviceKind::CPU, what << " lives on " << device_name(t.device())
                                               << ", the CPU backend needs it in host memory");
}

void check_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
  BP_CHECK(a.dtype() == b.dtype(), op << ": mixed dtypes " << dtype_name(a.dtype()) << " and "
                                      << dtype_name(b.dtype()));
}

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads) {
    if (threads > 0) {
      omp_set_num_threads(threads);
      cpu::set_blas_threads(threads);
    }
  }

  DeviceKind device() const override { return DeviceKind::CPU; }
  std::string name() const override {
#if defined(BRAINPROP_HAVE_OPENBLAS)
    return "cpu (" + std::to_string(omp_get_max_threads()) + " threads, OpenBLAS)";
#else
    return "cpu (" + std::to_string(omp_get_max_threads()) + " threads, built-in GEMM)";
#endif
  }

  Tensor empty(const Shape& shape, DType dtype) override {
    auto storage = std::make_shared<Storage>();
    const size_t bytes = static_cast<size_t>(shape_elements(shape)) * dtype_size(dtype);
    const size_t rounded = (bytes + 63) / 64 * 64;  // 64-byte aligned for SIMD loads
    storage->data = rounded ? std::aligned_alloc(64, rounded) : nullptr;
    BP_CHECK(rounded == 0 || storage->data, "out of host memory allocating " << bytes << " bytes for "
                                                                            << shape_string(shape));
    storage->bytes = bytes;
    storage->device = DeviceKind::CPU;
    storage->release = [](void* p) { std::free(p); };
    return Tensor(std::move(storage), shape, dtype);
  }

  void copy_from_host(Tensor& dst, const void* src) override {
    check_cpu(dst, "copy destination");
    if (dst.bytes()) std::memcpy(dst.raw(), src, dst.bytes());
  }
  void copy_to_host(const Tensor& src, void* dst) override {
    check_cpu(src, "copy source");
    if (src.bytes()) std::memcpy(dst, src.raw(), src.bytes());
  }

  void fill(Tensor& t, double value) override {
    check_cpu(t, "fill target");
    const int64_t n = t.numel();
    switch (t.dtype()) {
      case DType::F32: std::fill_n(t.data<float>(), n, static_cast<float>(value)); break;
      case DType::F64: std::fill_n(t.data<double>(), n, value); break;
      case DType::I32: std::fill_n(t.data<int32_t>(), n, static_cast<int32_t>(value)); break;
      case DType::U8: std::fill_n(t.data<uint8_t>(), n, static_cast<uint8_t>(value)); break;
    }
  }

  void synchronize() override {}

  void gemm(bool ta, bool tb, double alpha, const Tensor& a, const Tensor& b, double beta,
            Tensor& c) override {
    check_cpu(a, "gemm A");
    check_cpu(b, "gemm B");
    check_cpu(c, "gemm C");
    check_same_dtype(a, b, "gemm");
    check_same_dtype(a, c, "gemm");
    // Plain locals: C++17 lambdas cannot capture structured bindings.
    const auto [rows, cols, depth] = gemm_dims(ta, tb, a, b, c);
    const int64_t m = rows, n = cols, k = depth;
    if (m == 0 || n == 0) return;
    dispatch_float(a.dtype(), "gemm", [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      cpu::gemm(ta, tb, int(m), int(n), int(k), alpha, a.data<T>(), int(a.dim(1)), b.data<T>(),
                int(b.dim(1)), beta, c.data<T>(), int(n));
    });
  }

  void add_row_bias(Tensor& y, const Tensor& bias) override {
    check_same_dtype(y, bias, "add_row_bias");
    const int64_t cols = bias.numel(), rows = y.numel() / cols;
    dispatch_float(y.dtype(), "add_row_bias", [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      T* out = y.data<T>();
      const T* b = bias.data<T>();
#pragma omp parallel for schedule(static)
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) out[r * cols + c] += b[c];
    });
  }

  void update_bias(Tensor& bias, const Tensor& dy, double decay, double step) override {
    check_same_dtype(bias, dy, "update_bias");
    const int64_t cols = bias.numel(), rows = dy.numel() / cols;
    dispatch_float(bias.dtype(), "update_bias", [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      T* b = bias.data<T>();
      const T* g = dy.data<T>();
#pragma omp parallel for schedule(static)
      for (int64_t c = 0; c < cols; ++c) {
        T sum = T(0);
        for (int64_t r = 0; r < rows; ++r) sum += g[r * cols + c];
        b[c] = static_cast<T>(decay) * b[c] - static_cast<T>(step) * sum;
      }
    });
  }

  void gather_rows_scaled(const Tensor& w, const Tensor& index, const Tensor& scale,
                          Tensor& out) override {
    gather_rows(w, index, scale, nullptr, out, "gather_rows_scaled");
  }

  void gather_rows_scaled_gated(const Tensor& w, const Tensor& index, const Tensor& scale,
                                const Tensor& y, Tensor& out) override {
    gather_rows(w, index, scale, &y, out, "gather_rows_scaled_gated");
  }

  void scatter_update_rows(Tensor& w, const Tensor& index, const Tensor& scale, const Tensor& x,
                           double decay, double step) override {
    check_same_dtype(w, x, "scatter_update_rows");
    const int64_t units = w.dim(0), cols = w.dim(1), rows = x.dim(0);
    BP_CHECK(x.row_elements() == cols, "scatter_update_rows: input width " << x.row_elements()
                                                                           << " != " << cols);
    dispatch_float(w.dtype(), "scatter_update_rows", [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      T* dst = w.data<T>();
      const int32_t* idx = index.data<int32_t>();
      const T* s = scale.data<T>();
      const T* in = x.data<T>();
      const T d = static_cast<T>(decay), st = static_cast<T>(step);
      // Columns are split across threads; samples are visited in order within each column,
      // so the result is the same for any thread count.
#pragma omp parallel
      {
        const int nt = omp_get_num_threads(), t = omp_get_thread_num();
        const int64_t c0 = cols * t / nt, c1 = cols * (t + 1) / nt;
        if (d != T(1))
          for (int64_t u = 0; u < units; ++u)
            for (int64_t c = c0; c < c1; ++c) dst[u * cols + c] *= d;
        for (int64_t r = 0; r < rows; ++r) {
          T* row = dst + static_cast<int64_t>(idx[r]) * cols;
          const T k = st * s[r];
          for (int64_t c = c0; c < c1; ++c) row[c] -= k * in[r * cols + c];
        }
      }
    });
  }

  void scatter_update_bias(Tensor& bias, const Tensor& index, const Tensor& scale, double decay,
                           double step) override {
    dispatch_float(bias.dtype(), "scatter_update_bias", [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      T* b = bias.data<T>();
      for (int64_t u = 0; u < bias.numel(); ++u) b[u] *= static_cast<T>(decay);
      const int32_t* idx = index.data<int32_t>();
      const T* s = scale.data<T>();
      for (int64_t r = 0; r < index.numel(); ++r) b[idx[r]] -= static_cast<T>(step) * s[r];
    });
  }

  void relu_forward(const Tensor& x, Tensor& y) override {
    check_same_dtype(x, y, "relu_forward");
    const int64_t n = x.numel();
    dispatch_float(x.dtype(), "relu_forward", [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      const T* in = x.data<T>();
      T* out = y.data<T>();
#pragma omp parallel for simd schedule(static)
      for (int64_t i = 0; i < n; ++i) out[i] = relu(in[i]);
    });
  }

  void relu_feedback(const Tensor& dy, const Tensor& y, Tensor& dx) override {
    check_same_dtype(dy, y, "relu_feedback");
    const int64_t n = dy.numel();
    dispatch_float(dy.dtype(), "relu_feedback", [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      const T* g = dy.data<T>();
      const T* act = y.data<T>();
      T* out = dx.data<T>();
#pragma omp parallel for simd schedule(static)
      for (int64_t i = 0; i < n; ++i) out[i] = gated_feedback(g[i], act[i]);
    });
  }

  void brainprop_head(const Tensor& logits, const Tensor& labels, const BrainPropHeadArgs& args,
                      Tensor& action, Tensor& err, Tensor& stats) override {
    const int64_t batch = logits.dim(0);
    const int classes = static_cast<int>(logits.dim(1));
    dispatch_float(logits.dtype(), "brainprop_head", [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      const T* a = logits.data<T>();
      const int32_t* y = labels.data<int32_t>();
      int32_t* s = action.data<int32_t>();
      T* e = err.data<T>();
      double* st = stats.data<double>();
      for (int64_t b = 0; b < batch; ++b) {
        const T* row = a + b * classes;
        const ActionChoice choice = max_boltzmann_select(row, classes, args.epsilon, args.seed,
                                                         args.step, static_cast<uint32_t>(b));
        const T reward = reward_for<T>(choice.action, y[b]);
        const T delta = reward - row[choice.action];
        s[b] = choice.action;
        e[b] = -delta;
        st[kStatLoss] += static_cast<double>(brainprop_sample_loss(delta));
        st[kStatCorrect] += argmax_row(row, classes) == y[b] ? 1.0 : 0.0;
        st[kStatReward] += static_cast<double>(reward);
        st[kStatExplored] += choice.explored ? 1.0 : 0.0;
      }
      st[kStatSamples] += static_cast<double>(batch);
    });
  }

  void reinforce_head(const Tensor& logits, const Tensor& labels, const ReinforceHeadArgs& args,
                      Tensor& baseline, Tensor& grad, Tensor& stats) override {
    check_cpu(baseline, "reinforce_head baseline");
    BP_CHECK(baseline.dtype() == DType::F64 && baseline.numel() == 1,
             "reinforce_head: baseline must be float64 [1]");
    const int64_t batch = logits.dim(0);
    const int classes = static_cast<int>(logits.dim(1));
    dispatch_float(logits.dtype(), "reinforce_head", [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      const T* a = logits.data<T>();
      const int32_t* y = labels.data<int32_t>();
      T* g = grad.data<T>();
      double* base = baseline.data<double>();
      double* st = stats.data<double>();
      const T b_old = static_cast<T>(*base);
      double reward_sum = 0;
      for (int64_t b = 0; b < batch; ++b) {
        const T* row = a + b * classes;
        const int greedy = argmax_row(row, classes);
        const int s = reinforce_select(row, classes, args.seed, args.step, static_cast<uint32_t>(b));
        const T reward = reward_for<T>(s, y[b]);
        st[kStatLoss] += double(reinforce_row(row, classes, s, reward, b_old, g + b * classes));
        st[kStatCorrect] += greedy == y[b] ? 1.0 : 0.0;
        st[kStatExplored] += s != greedy ? 1.0 : 0.0;
        reward_sum += double(reward);
      }
      st[kStatReward] += reward_sum;
      st[kStatSamples] += static_cast<double>(batch);
      *base = reinforce_baseline_update(*base, reward_sum, batch, args.baseline_rate);
    });
  }

  void softmax_xent_head(const Tensor& logits, const Tensor& labels, Tensor& grad,
                         Tensor& stats) override {
    const int64_t batch = logits.dim(0);
    const int classes = static_cast<int>(logits.dim(1));
    dispatch_float(logits.dtype(), "softmax_xent_head", [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      const T* a = logits.data<T>();
      const int32_t* y = labels.data<int32_t>();
      T* g = grad.data<T>();
      std::vector<double> loss(static_cast<size_t>(batch));
#pragma omp parallel for schedule(static)
      for (int64_t b = 0; b < batch; ++b)
        loss[size_t(b)] = double(softmax_xent_row(a + b * classes, classes, y[b], g + b * classes));
      double* st = stats.data<double>();
      for (int64_t b = 0; b < batch; ++b) {
        st[kStatLoss] += loss[size_t(b)];
        st[kStatCorrect] += argmax_row(a + b * classes, classes) == y[b] ? 1.0 : 0.0;
      }
      st[kStatSamples] += static_cast<double>(batch);
    });
  }

  void count_nonfinite(const Tensor& t, Tensor& counts, int64_t slot) override {
    check_cpu(t, "count_nonfinite tensor");
    check_cpu(counts, "count_nonfinite counts");
    check_count_slot(counts, slot);
    dispatch_float(t.dtype(), "count_nonfinite", [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      const T* v = t.data<T>();
      int64_t bad = 0;
#pragma omp parallel for reduction(+ : bad) schedule(static)
      for (int64_t i = 0; i < t.numel(); ++i) bad += is_nonfinite(v[i]) ? 1 : 0;
      counts.data<double>()[slot] += double(bad);
    });
  }

  void count_correct(const Tensor& logits, const Tensor& labels, Tensor& stats) override {
    const int64_t batch = logits.dim(0);
    const int classes = static_cast<int>(logits.dim(1));
    dispatch_float(logits.dtype(), "count_correct", [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      const T* a = logits.data<T>();
      const int32_t* y = labels.data<int32_t>();
      double* st = stats.data<double>();
      for (int64_t b = 0; b < batch; ++b)
        st[kStatCorrect] += argmax_row(a + b * classes, classes) == y[b] ? 1.0 : 0.0;
      st[kStatSamples] += static_cast<double>(batch);
    });
  }

  void conv2d_forward(const Tensor& x, const Tensor& w, Tensor& y, const Conv2dGeometry& g) override {
    cpu::conv2d_forward(x, w, y, g);
  }
  void conv2d_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx,
                            const Conv2dGeometry& g) override {
    cpu::conv2d_backward_data(dy, w, dx, g);
  }
  void conv2d_update(Tensor& w, const Tensor& dy, const Tensor& x, const Conv2dGeometry& g,
                     double decay, double step) override {
    cpu::conv2d_update(w, dy, x, g, decay, step);
  }
  void local2d_forward(const Tensor& x, const Tensor& w, Tensor& y, const Conv2dGeometry& g) override {
    cpu::local2d_forward(x, w, y, g);
  }
  void local2d_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx,
                             const Conv2dGeometry& g) override {
    cpu::local2d_backward_data(dy, w, dx, g);
  }
  void local2d_update(Tensor& w, const Tensor& dy, const Tensor& x, const Conv2dGeometry& g,
                      double decay, double step) override {
    cpu::local2d_update(w, dy, x, g, decay, step);
  }
  void batchnorm_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& y,
                               Tensor& saved_mean, Tensor& saved_inv_std, Tensor& running_mean,
                               Tensor& running_var, double momentum, double epsilon) override {
    cpu::batchnorm_forward_train(x, gamma, beta, y, saved_mean, saved_inv_std, running_mean,
                                 running_var, momentum, epsilon);
  }
  void batchnorm_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                              const Tensor& running_mean, const Tensor& running_var, double epsilon,
                              Tensor& y) override {
    cpu::batchnorm_forward_eval(x, gamma, beta, running_mean, running_var, epsilon, y);
  }
  void batchnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& saved_mean,
                          const Tensor& saved_inv_std, Tensor& gamma, Tensor& beta, Tensor* dx,
                          double decay, double step) override {
    cpu::batchnorm_backward(dy, x, saved_mean, saved_inv_std, gamma, beta, dx, decay, step);
  }
  void maxpool2d_forward(const Tensor& x, Tensor& y, const Pool2dGeometry& g) override {
    cpu::maxpool2d_forward(x, y, g);
  }
  void maxpool2d_backward(const Tensor& dy, const Tensor& x, Tensor& dx,
                          const Pool2dGeometry& g) override {
    cpu::maxpool2d_backward(dy, x, dx, g);
  }
  void dropout_apply(const Tensor& x, Tensor& y, float rate, uint64_t seed, uint64_t step,
                     uint32_t layer) override {
    cpu::dropout_apply(x, y, rate, seed, step, layer);
  }

  void gather_batch(const Tensor& images, const Tensor& labels, const Tensor& order, int64_t first,
                    Tensor& x, Tensor& y) override {
    const int64_t rows = x.dim(0), width = images.row_elements();
    BP_CHECK(x.row_elements() == width, "gather_batch: batch row " << x.row_elements()
                                                                   << " != image size " << width);
    BP_CHECK(first + rows <= order.numel(), "gather_batch: batch runs past the epoch order");
    const uint8_t* src = images.data<uint8_t>();
    const int32_t* lab = labels.data<int32_t>();
    const int32_t* ord = order.data<int32_t>() + first;
    int32_t* yl = y.data<int32_t>();
    dispatch_float(x.dtype(), "gather_batch", [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      T* dst = x.data<T>();
      const T inv = T(1) / T(255);
#pragma omp parallel for schedule(static)
      for (int64_t r = 0; r < rows; ++r) {
        const uint8_t* img = src + static_cast<int64_t>(ord[r]) * width;
        for (int64_t i = 0; i < width; ++i) dst[r * width + i] = static_cast<T>(img[i]) * inv;
        yl[r] = lab[ord[r]];
      }
    });
  }

  void seeded_permutation(Tensor& order, uint64_t seed, RngStream stream, uint32_t round) override {
    const int64_t count = order.numel();
    BP_CHECK(count < (int64_t(1) << 31), "cannot order " << count << " items");
    std::vector<std::pair<uint64_t, int32_t>> keyed(static_cast<size_t>(count));
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < count; ++i)
      keyed[size_t(i)] = {shuffle_key(seed, stream, static_cast<uint32_t>(i), round),
                          static_cast<int32_t>(i)};
    std::sort(keyed.begin(), keyed.end());
    int32_t* out = order.data<int32_t>();
    for (int64_t i = 0; i < count; ++i) out[i] = keyed[size_t(i)].second;
  }

 private:
  // out[r, :] = scale[r] * w[index[r], :], gated by the ReLU output y when given.
  static void gather_rows(const Tensor& w, const Tensor& index, const Tensor& scale,
                          const Tensor* gate_y, Tensor& out, const char* op) {
    check_same_dtype(w, out, op);
    if (gate_y) check_same_dtype(*gate_y, out, op);
    const int64_t rows = out.dim(0), cols = w.dim(1);
    BP_CHECK(out.row_elements() == cols && (!gate_y || gate_y->numel() == out.numel()) &&
                 index.numel() >= rows && scale.numel() >= rows,
             op << ": shapes do not agree");
    dispatch_float(w.dtype(), op, [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      const T* src = w.data<T>();
      const int32_t* idx = index.data<int32_t>();
      const T* s = scale.data<T>();
      const T* act = gate_y ? gate_y->data<T>() : nullptr;
      T* dst = out.data<T>();
#pragma omp parallel for schedule(static)
      for (int64_t r = 0; r < rows; ++r) {
        const T* row = src + static_cast<int64_t>(idx[r]) * cols;
        for (int64_t c = 0; c < cols; ++c) {
          const T v = s[r] * row[c];
          dst[r * cols + c] = act ? gated_feedback(v, act[r * cols + c]) : v;
        }
      }
    });
  }
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int threads) {
  return std::make_unique<CpuBackend>(threads);
}

}  // namespace bp
