// The emulator's cuDNN: the legacy 2-D convolution API (handles, tensor/filter/convolution
// descriptors, v7 heuristics, workspace queries, forward, backward data, backward filter) for
// float data, written from NVIDIA's API reference and the cudnn_*.h headers rather than from
// the project's calls.
//
// Behaviour worth knowing:
// - Layouts: tensors NCHW or NHWC; filters NCHW (= KCRS) or NHWC (= KRSC). Float only.
// - Every op computes y = alpha * op(...) + beta * y in float64 and rounds once to float; the
//   destination is not read when beta == 0 (it may hold NaN).
// - Math: on the emulated GPU (Hopper) CUDNN_DEFAULT_MATH and CUDNN_TENSOR_OP_MATH let float
//   convolutions run on TF32 tensor cores, so their inputs are rounded to TF32 (nearest, a
//   10-bit mantissa) - the worst case a caller must tolerate; CUDNN_TENSOR_OP_MATH_ALLOW_-
//   CONVERSION may down-convert to FP16 (rounded to FP16 here); CUDNN_FMA_MATH is exact FP32.
//   NVIDIA_TF32_OVERRIDE=0 disables TF32 as on a real GPU.
// - Heuristics (*_v7) list every algorithm once: the supported ones first, in a fixed order of
//   preference for the geometry, then the unsupported ones with CUDNN_STATUS_NOT_SUPPORTED.
//   For float data their mathType is CUDNN_DEFAULT_MATH even when the descriptor asks for
//   CUDNN_FMA_MATH - frameworks (PyTorch, ONNX Runtime) overwrite the reported math type
//   with FMA_MATH themselves when TF32 is off, because cuDNN does not report it.
// - Workspace: each algorithm has a fixed size formula; a call with less workspace than its
//   algorithm needs fails with CUDNN_STATUS_BAD_PARAM; the workspace given to a call is filled
//   with NaN bytes (in stream order) before the call "runs", as a real kernel leaves garbage.
// - Unsupported algorithm/geometry pairs (FFT, Winograd, GEMM outside their documented
//   restrictions, DIRECT and BWD_FILTER_WINOGRAD always) fail with CUDNN_STATUS_NOT_SUPPORTED.
// - cudnnGetLastErrorString returns the message of the last failing call on this thread.
#include <cudnn.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "runtime.h"

#pragma clang diagnostic ignored "-Wdeprecated-declarations"

struct cudnnContext {
  cudaStream_t stream = nullptr;
};

struct cudnnTensorStruct {
  bool set = false;
  cudnnTensorFormat_t format = CUDNN_TENSOR_NCHW;
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  int n = 0, c = 0, h = 0, w = 0;
};

struct cudnnFilterStruct {
  bool set = false;
  cudnnTensorFormat_t format = CUDNN_TENSOR_NCHW;
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  int k = 0, c = 0, r = 0, s = 0;  // output maps, input maps, height, width
};

struct cudnnConvolutionStruct {
  bool set = false;
  int pad_h = 0, pad_w = 0, stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  cudnnDataType_t compute = CUDNN_DATA_FLOAT;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

namespace {

thread_local std::string g_last_error;

// Records `message` as the last error of this thread and returns `status`.
cudnnStatus_t fail(cudnnStatus_t status, const std::string& message) {
  g_last_error = std::string(cudnnGetErrorString(status)) + ": " + message;
  return status;
}

// ---------------------------------------------------------------------------------------------
// Geometry of one convolution, checked against the descriptors.
struct Conv {
  int n = 0, c = 0, h = 0, w = 0;  // input
  int k = 0, r = 0, s = 0;         // filter (k output maps of c x r x s)
  int oh = 0, ow = 0;              // output
  int pad_h = 0, pad_w = 0, stride_h = 1, stride_w = 1, dil_h = 1, dil_w = 1;
  bool flip = false;  // CUDNN_CONVOLUTION: the filter is applied rotated by 180 degrees
  cudnnTensorFormat_t x_format = CUDNN_TENSOR_NCHW, y_format = CUDNN_TENSOR_NCHW,
                      w_format = CUDNN_TENSOR_NCHW;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;

  int64_t x_elems() const { return int64_t(n) * c * h * w; }
  int64_t y_elems() const { return int64_t(n) * k * oh * ow; }
  int64_t w_elems() const { return int64_t(k) * c * r * s; }
  bool nchw() const { return x_format == CUDNN_TENSOR_NCHW; }
  bool stride1() const { return stride_h == 1 && stride_w == 1; }
  bool undilated() const { return dil_h == 1 && dil_w == 1; }
};

int output_extent(int in, int pad, int filter, int dilation, int stride) {
  return 1 + (in + 2 * pad - ((filter - 1) * dilation + 1)) / stride;  // may be <= 0
}

std::string shape(int a, int b, int c, int d) {
  std::ostringstream out;
  out << a << "x" << b << "x" << c << "x" << d;
  return out.str();
}

// Fills *g from the descriptors; `who` names the API call in messages. yDesc describes the
// output of the forward convolution (y, or dy for the backward ops).
cudnnStatus_t make_conv(const char* who, cudnnTensorDescriptor_t x, cudnnFilterDescriptor_t w,
                        cudnnConvolutionDescriptor_t conv, cudnnTensorDescriptor_t y, Conv* g) {
  if (!x || !w || !conv || !y)
    return fail(CUDNN_STATUS_BAD_PARAM, std::string(who) + ": a descriptor is null");
  if (!x->set || !w->set || !conv->set || !y->set)
    return fail(CUDNN_STATUS_BAD_PARAM, std::string(who) + ": a descriptor was never set");
  if (x->type != CUDNN_DATA_FLOAT || y->type != CUDNN_DATA_FLOAT || w->type != CUDNN_DATA_FLOAT)
    return fail(CUDNN_STATUS_BAD_PARAM, std::string(who) + ": data types differ");
  if (x->c != w->c)
    return fail(CUDNN_STATUS_BAD_PARAM, std::string(who) + ": input has " + std::to_string(x->c) +
                                            " channels, the filter " + std::to_string(w->c));
  if (x->format != y->format)
    return fail(CUDNN_STATUS_BAD_PARAM, std::string(who) + ": input and output layouts differ");
  if (w->format != x->format)
    return fail(CUDNN_STATUS_NOT_SUPPORTED,
                std::string(who) + ": the emulator needs the filter in the tensors' layout "
                                   "(NCHW tensors with KCRS filters, NHWC with KRSC)");
  Conv& c = *g;
  c.n = x->n;
  c.c = x->c;
  c.h = x->h;
  c.w = x->w;
  c.k = w->k;
  c.r = w->r;
  c.s = w->s;
  c.pad_h = conv->pad_h;
  c.pad_w = conv->pad_w;
  c.stride_h = conv->stride_h;
  c.stride_w = conv->stride_w;
  c.dil_h = conv->dilation_h;
  c.dil_w = conv->dilation_w;
  c.flip = conv->mode == CUDNN_CONVOLUTION;
  c.x_format = x->format;
  c.y_format = y->format;
  c.w_format = w->format;
  c.math = conv->math;
  c.oh = output_extent(c.h, c.pad_h, c.r, c.dil_h, c.stride_h);
  c.ow = output_extent(c.w, c.pad_w, c.s, c.dil_w, c.stride_w);
  if (c.oh <= 0 || c.ow <= 0)
    return fail(CUDNN_STATUS_BAD_PARAM, std::string(who) + ": the filter does not fit the padded input");
  if (y->n != c.n || y->c != c.k || y->h != c.oh || y->w != c.ow)
    return fail(CUDNN_STATUS_BAD_PARAM,
                std::string(who) + ": output descriptor " + shape(y->n, y->c, y->h, y->w) +
                    " (NCHW order) but the convolution gives " + shape(c.n, c.k, c.oh, c.ow));
  return CUDNN_STATUS_SUCCESS;
}

// ---------------------------------------------------------------------------------------------
// Algorithms: support, workspace, determinism, order of preference.

size_t next_pow2(size_t v) {
  size_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

// FFT restrictions of the reference: NCHW, unit stride and dilation, padded input <= 256 per
// side, padding smaller than the filter.
bool fft_ok(const Conv& g) {
  return g.nchw() && g.stride1() && g.undilated() && g.h + 2 * g.pad_h <= 256 &&
         g.w + 2 * g.pad_w <= 256 && g.pad_h < g.r && g.pad_w < g.s;
}
bool fft_tiling_ok(const Conv& g) {
  return g.nchw() && g.stride1() && g.undilated() && g.r <= 32 && g.s <= 32 && g.pad_h < g.r &&
         g.pad_w < g.s;
}
bool winograd_ok(const Conv& g) {  // the fused Winograd kernels: 3x3 only
  return g.nchw() && g.stride1() && g.undilated() && g.r == 3 && g.s == 3;
}
bool winograd_nonfused_ok(const Conv& g) {
  return g.nchw() && g.stride1() && g.undilated() &&
         ((g.r == 3 && g.s == 3) || (g.r == 5 && g.s == 5));
}

// FFT scratch: x, w and y transformed on the padded input's power-of-two grid (complex).
size_t fft_bytes(const Conv& g) {
  const size_t fh = next_pow2(size_t(g.h + 2 * g.pad_h)), fw = next_pow2(size_t(g.w + 2 * g.pad_w));
  const size_t planes = size_t(g.n) * g.c + size_t(g.k) * g.c + size_t(g.n) * g.k;
  return planes * fh * (fw / 2 + 1) * 2 * sizeof(float);
}
size_t fft_tiling_bytes(const Conv& g) {  // 32x32 tiles, one batch of tiles at a time
  const size_t planes = size_t(g.c) * g.k + size_t(g.c + g.k) * 32;
  return planes * 32 * 17 * 2 * sizeof(float);
}
size_t winograd_nonfused_bytes(const Conv& g) {  // transformed filter and 6x6 input tiles
  const size_t tiles = size_t(g.n) * ((g.oh + 3) / 4) * ((g.ow + 3) / 4);
  return (size_t(g.k) * g.c + tiles * (g.c + g.k)) * 36 * sizeof(float);
}
size_t im2col_bytes(const Conv& g) {  // one image's patch matrix
  return size_t(g.c) * g.r * g.s * g.oh * g.ow * sizeof(float);
}
size_t index_table_bytes(const Conv& g) {  // precomputed patch offsets
  return (size_t(g.c) * g.r * g.s + 2) * sizeof(int) * 2;
}

constexpr cudnnStatus_t kUnsupported = CUDNN_STATUS_NOT_SUPPORTED;

// Workspace of a forward algorithm, or kUnsupported for the geometry.
cudnnStatus_t fwd_workspace(const Conv& g, cudnnConvolutionFwdAlgo_t algo, size_t* bytes) {
  *bytes = 0;
  switch (algo) {
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM: return CUDNN_STATUS_SUCCESS;
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM:
      *bytes = index_table_bytes(g);
      return CUDNN_STATUS_SUCCESS;
    case CUDNN_CONVOLUTION_FWD_ALGO_GEMM:
      if (!g.nchw()) return kUnsupported;
      *bytes = im2col_bytes(g);
      return CUDNN_STATUS_SUCCESS;
    case CUDNN_CONVOLUTION_FWD_ALGO_DIRECT: return kUnsupported;  // not implemented by cuDNN
    case CUDNN_CONVOLUTION_FWD_ALGO_FFT:
      if (!fft_ok(g)) return kUnsupported;
      *bytes = fft_bytes(g);
      return CUDNN_STATUS_SUCCESS;
    case CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING:
      if (!fft_tiling_ok(g)) return kUnsupported;
      *bytes = fft_tiling_bytes(g);
      return CUDNN_STATUS_SUCCESS;
    case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD:
      if (!winograd_ok(g)) return kUnsupported;
      *bytes = size_t(g.k) * g.c * 16 * sizeof(float);
      return CUDNN_STATUS_SUCCESS;
    case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED:
      if (!winograd_nonfused_ok(g)) return kUnsupported;
      *bytes = winograd_nonfused_bytes(g);
      return CUDNN_STATUS_SUCCESS;
    default: return CUDNN_STATUS_BAD_PARAM;
  }
}

cudnnStatus_t data_workspace(const Conv& g, cudnnConvolutionBwdDataAlgo_t algo, size_t* bytes) {
  *bytes = 0;
  switch (algo) {
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_0: return CUDNN_STATUS_SUCCESS;
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_1:  // the filter, transposed and rotated
      *bytes = size_t(g.k) * g.c * g.r * g.s * sizeof(float);
      return CUDNN_STATUS_SUCCESS;
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT:
      if (!fft_ok(g)) return kUnsupported;
      *bytes = fft_bytes(g);
      return CUDNN_STATUS_SUCCESS;
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING:
      if (!fft_tiling_ok(g)) return kUnsupported;
      *bytes = fft_tiling_bytes(g);
      return CUDNN_STATUS_SUCCESS;
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD:
      if (!winograd_ok(g)) return kUnsupported;
      *bytes = size_t(g.k) * g.c * 16 * sizeof(float);
      return CUDNN_STATUS_SUCCESS;
    case CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED:
      if (!winograd_nonfused_ok(g)) return kUnsupported;
      *bytes = winograd_nonfused_bytes(g);
      return CUDNN_STATUS_SUCCESS;
    default: return CUDNN_STATUS_BAD_PARAM;
  }
}

cudnnStatus_t filter_workspace(const Conv& g, cudnnConvolutionBwdFilterAlgo_t algo, size_t* bytes) {
  *bytes = 0;
  switch (algo) {
    case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0: return CUDNN_STATUS_SUCCESS;
    case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1:  // per-split partial filter gradients
      *bytes = size_t(g.k) * g.c * g.r * g.s * sizeof(float) * 4 + im2col_bytes(g);
      return CUDNN_STATUS_SUCCESS;
    case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3:
      *bytes = index_table_bytes(g);
      return CUDNN_STATUS_SUCCESS;
    case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT:
      if (!fft_ok(g)) return kUnsupported;
      *bytes = fft_bytes(g);
      return CUDNN_STATUS_SUCCESS;
    case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING:
      if (!fft_tiling_ok(g)) return kUnsupported;
      *bytes = fft_tiling_bytes(g);
      return CUDNN_STATUS_SUCCESS;
    case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD: return kUnsupported;  // not implemented
    case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED:
      if (!winograd_nonfused_ok(g)) return kUnsupported;
      *bytes = winograd_nonfused_bytes(g);
      return CUDNN_STATUS_SUCCESS;
    default: return CUDNN_STATUS_BAD_PARAM;
  }
}

cudnnDeterminism_t data_determinism(cudnnConvolutionBwdDataAlgo_t algo) {
  return algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0 ? CUDNN_NON_DETERMINISTIC : CUDNN_DETERMINISTIC;
}
cudnnDeterminism_t filter_determinism(cudnnConvolutionBwdFilterAlgo_t algo) {
  return algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 || algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3
             ? CUDNN_NON_DETERMINISTIC
             : CUDNN_DETERMINISTIC;
}

// The math type a heuristic result reports for the descriptor's request (see the file comment).
cudnnMathType_t reported_math(const Conv& g) {
  return g.math == CUDNN_FMA_MATH ? CUDNN_DEFAULT_MATH : g.math;
}

// Fills perf results in `preference` order, supported first; returns the count written.
template <typename Perf, typename Algo, typename Workspace, typename Determinism>
int fill_perfs(const Conv& g, const std::vector<Algo>& preference, int requested, Perf* out,
               Workspace&& workspace, Determinism&& determinism) {
  std::vector<Perf> supported, unsupported;
  for (Algo algo : preference) {
    Perf p{};
    p.algo = algo;
    p.status = workspace(g, algo, &p.memory);
    p.time = -1.f;  // heuristics do not time anything
    p.determinism = determinism(algo);
    p.mathType = reported_math(g);
    if (p.status == CUDNN_STATUS_SUCCESS) {
      supported.push_back(p);
    } else {
      p.memory = 0;
      unsupported.push_back(p);
    }
  }
  supported.insert(supported.end(), unsupported.begin(), unsupported.end());
  const int count = std::min<int>(requested, int(supported.size()));
  for (int i = 0; i < count; ++i) out[i] = supported[size_t(i)];
  return count;
}

std::vector<cudnnConvolutionFwdAlgo_t> fwd_preference(const Conv& g) {
  using A = cudnnConvolutionFwdAlgo_t;
  if (winograd_ok(g) && g.c >= 16)
    return {CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
            CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD, CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING,
            CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, CUDNN_CONVOLUTION_FWD_ALGO_GEMM,
            CUDNN_CONVOLUTION_FWD_ALGO_FFT, CUDNN_CONVOLUTION_FWD_ALGO_DIRECT};
  return std::vector<A>{CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
                        CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, CUDNN_CONVOLUTION_FWD_ALGO_GEMM,
                        CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING, CUDNN_CONVOLUTION_FWD_ALGO_FFT,
                        CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED,
                        CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD, CUDNN_CONVOLUTION_FWD_ALGO_DIRECT};
}

std::vector<cudnnConvolutionBwdDataAlgo_t> data_preference() {
  return {CUDNN_CONVOLUTION_BWD_DATA_ALGO_1,        CUDNN_CONVOLUTION_BWD_DATA_ALGO_0,
          CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED, CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING,
          CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD, CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT};
}

std::vector<cudnnConvolutionBwdFilterAlgo_t> filter_preference() {
  return {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1,   CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0,
          CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3,   CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED,
          CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT,
          CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD};
}

// ---------------------------------------------------------------------------------------------
// Arithmetic.

enum class Rounding { None, TF32, FP16 };

Rounding rounding_for(cudnnMathType_t math) {
  const char* override_env = std::getenv("NVIDIA_TF32_OVERRIDE");
  const bool tf32_off = override_env && std::strcmp(override_env, "0") == 0;
  switch (math) {
    case CUDNN_FMA_MATH: return Rounding::None;
    case CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION: return Rounding::FP16;
    default: return tf32_off ? Rounding::None : Rounding::TF32;
  }
}

float round_to_tf32(float x) {  // nearest, ties away from zero (as cvt.rna.tf32.f32)
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  if ((bits & 0x7f800000u) == 0x7f800000u) return x;
  bits = (bits + 0x1000u) & ~0x1fffu;
  std::memcpy(&x, &bits, sizeof bits);
  return x;
}

float round_to_fp16(float x) {  // nearest, ties to even; overflow to inf; FP16 subnormals
  if (!std::isfinite(x)) return x;
  const float magnitude = std::fabs(x);
  if (magnitude >= 65520.f) return std::copysign(INFINITY, x);
  if (magnitude < 0x1p-14f) return std::nearbyint(x * 0x1p24f) * 0x1p-24f;
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  bits = (bits + 0xfffu + ((bits >> 13) & 1u)) & ~0x1fffu;
  std::memcpy(&x, &bits, sizeof bits);
  return x;
}

float round_input(float v, Rounding r) {
  return r == Rounding::TF32 ? round_to_tf32(v) : r == Rounding::FP16 ? round_to_fp16(v) : v;
}

// Offset of element (n, c, h, w) of an N x C x H x W tensor in `format`.
inline int64_t tensor_offset(cudnnTensorFormat_t format, int C, int H, int W, int n, int c, int h, int w) {
  return format == CUDNN_TENSOR_NHWC ? ((int64_t(n) * H + h) * W + w) * C + c
                                     : ((int64_t(n) * C + c) * H + h) * W + w;
}

// The kernels work on channel-last float copies (channels contiguous, inputs rounded):
//   x  [n][h][w][c], y/dy [n][oh][ow][k], w [k][r][s][c] with the CUDNN_CONVOLUTION flip
// applied, so that filter tap (r, s) always reads input row oh*stride - pad + r*dilation.
std::vector<float> to_channels_last(const float* src, cudnnTensorFormat_t format, int N, int C,
                                    int H, int W, Rounding rounding) {
  std::vector<float> out(size_t(N) * C * H * W);
  if (format == CUDNN_TENSOR_NHWC) {  // already channels-last
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < int64_t(out.size()); ++i) out[size_t(i)] = round_input(src[i], rounding);
    return out;
  }
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n)
    for (int h = 0; h < H; ++h)
      for (int w = 0; w < W; ++w)
        for (int c = 0; c < C; ++c)
          out[((size_t(n) * H + h) * W + w) * C + c] =
              round_input(src[tensor_offset(format, C, H, W, n, c, h, w)], rounding);
  return out;
}

std::vector<float> filter_to_krsc(const float* src, const Conv& g, Rounding rounding) {
  std::vector<float> out(size_t(g.w_elems()));
  for (int k = 0; k < g.k; ++k)
    for (int r = 0; r < g.r; ++r)
      for (int s = 0; s < g.s; ++s)
        for (int c = 0; c < g.c; ++c) {
          const int sr = g.flip ? g.r - 1 - r : r, ss = g.flip ? g.s - 1 - s : s;
          // KRSC storage is the NHWC offset of (k, c, r, s); KCRS the NCHW one.
          out[((size_t(k) * g.r + r) * g.s + s) * g.c + c] =
              round_input(src[tensor_offset(g.w_format, g.c, g.r, g.s, k, c, sr, ss)], rounding);
        }
  return out;
}

// dst = alpha * value + beta * dst (dst not read when beta == 0), rounded once to float.
inline void blend(float* dst, double value, double alpha, double beta) {
  *dst = beta == 0.0 ? float(alpha * value) : float(alpha * value + beta * double(*dst));
}

// --- the three ops lowered to one GEMM shape: C[i][j] = sum_p A(i, p) * B(j, p) ---
// Operands are produced element by element by callables (patches are gathered while packing, so
// no im2col buffer), packed as doubles into strips, and multiplied by a register-blocked
// micro-kernel accumulating in float64 (each float product is exact in double).
constexpr int kMR = 8;  // rows of C per micro-tile (two AVX2 vectors of doubles)
constexpr int kNR = 6;  // columns of C per micro-tile
constexpr int kRowStripsPerTask = 16;

// Four doubles as one vector value (a ymm register under AVX2, two xmm otherwise). Written
// with explicit vectors: the auto-vectoriser spilled the accumulators of the plain loop.
typedef double Double4 __attribute__((vector_size(32)));

inline __attribute__((always_inline)) void micro_kernel_body(int64_t depth, const double* __restrict a,
                                                             const double* __restrict b,
                                                             double* __restrict out) {
  static_assert(kMR == 8, "two Double4 per column");
  Double4 acc[kNR][2] = {};
  for (int64_t p = 0; p < depth; ++p) {
    Double4 a0, a1;
    std::memcpy(&a0, a + p * kMR, sizeof a0);
    std::memcpy(&a1, a + p * kMR + 4, sizeof a1);
    const double* bp = b + p * kNR;
    for (int c = 0; c < kNR; ++c) {
      const Double4 bc = {bp[c], bp[c], bp[c], bp[c]};
      acc[c][0] += a0 * bc;
      acc[c][1] += a1 * bc;
    }
  }
  for (int c = 0; c < kNR; ++c) {
    std::memcpy(out + c * kMR, &acc[c][0], sizeof acc[c][0]);
    std::memcpy(out + c * kMR + 4, &acc[c][1], sizeof acc[c][1]);
  }
}
BP_EMU_UNSANITIZED __attribute__((target("avx2,fma"))) void micro_kernel_avx2(int64_t depth, const double* a,
                                                          const double* b, double* out) {
  micro_kernel_body(depth, a, b, out);
}
BP_EMU_UNSANITIZED void micro_kernel_generic(int64_t depth, const double* a, const double* b, double* out) {
  micro_kernel_body(depth, a, b, out);
}
using MicroKernel = void (*)(int64_t, const double*, const double*, double*);
MicroKernel pick_micro_kernel() {
  static const MicroKernel chosen =
      bp_emu::pick_by_cpu<MicroKernel>(micro_kernel_avx2, micro_kernel_generic);
  return chosen;
}

// store(i, j, value) for every element of C = A B^T (M x N, depth K).
template <typename AElem, typename BElem, typename Store>
void gemm_nt(int64_t M, int64_t N, int64_t K, AElem&& a_elem, BElem&& b_elem, Store&& store) {
  if (M == 0 || N == 0) return;
  const int64_t m_strips = (M + kMR - 1) / kMR, n_strips = (N + kNR - 1) / kNR;
  // Uninitialised on purpose: every element is written below (a zeroing pass costs as much).
  const std::unique_ptr<double[]> a_pack(new double[size_t(m_strips * kMR * K)]);
  const std::unique_ptr<double[]> b_pack(new double[size_t(n_strips * kNR * K)]);
#pragma omp parallel for schedule(static)
  for (int64_t s = 0; s < m_strips; ++s) {
    double* dst = &a_pack[size_t(s * kMR * K)];
    const int rows = int(std::min<int64_t>(kMR, M - s * kMR));
    for (int64_t p = 0; p < K; ++p)
      for (int r = 0; r < kMR; ++r) dst[p * kMR + r] = r < rows ? double(a_elem(s * kMR + r, p)) : 0.0;
  }
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < n_strips; ++t) {
    double* dst = &b_pack[size_t(t * kNR * K)];
    const int cols = int(std::min<int64_t>(kNR, N - t * kNR));
    for (int64_t p = 0; p < K; ++p)
      for (int c = 0; c < kNR; ++c) dst[p * kNR + c] = c < cols ? double(b_elem(t * kNR + c, p)) : 0.0;
  }
  const MicroKernel kernel = pick_micro_kernel();
  const int64_t row_tasks = (m_strips + kRowStripsPerTask - 1) / kRowStripsPerTask;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t task = 0; task < row_tasks * n_strips; ++task) {
    const int64_t t = task % n_strips, s0 = task / n_strips * kRowStripsPerTask;
    const int64_t s_end = std::min(m_strips, s0 + kRowStripsPerTask);
    double tile[kMR * kNR];
    for (int64_t s = s0; s < s_end; ++s) {
      kernel(K, &a_pack[size_t(s * kMR * K)], &b_pack[size_t(t * kNR * K)], tile);
      for (int c = 0; c < kNR && t * kNR + c < N; ++c)
        for (int r = 0; r < kMR && s * kMR + r < M; ++r) store(s * kMR + r, t * kNR + c, tile[c * kMR + r]);
    }
  }
}

// Input pixel read by filter tap (r, s) of output (oy, ox), or -1 in the padding.
inline int64_t input_index(const Conv& g, int n, int oy, int ox, int r, int s) {
  const int iy = oy * g.stride_h - g.pad_h + r * g.dil_h;
  const int ix = ox * g.stride_w - g.pad_w + s * g.dil_w;
  if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) return -1;
  return (int64_t(n) * g.h + iy) * g.w + ix;
}

// Splits a flat output position into (n, oy, ox).
inline void split_position(const Conv& g, int64_t pos, int* n, int* oy, int* ox) {
  *ox = int(pos % g.ow);
  *oy = int(pos / g.ow % g.oh);
  *n = int(pos / (int64_t(g.ow) * g.oh));
}

// patches[pos][r, s, c]: the input pixels each output position's filter taps read (channels-last
// x), zeros in the padding.
std::vector<float> im2col(const Conv& g, const std::vector<float>& xs) {
  const int64_t taps = int64_t(g.r) * g.s * g.c, positions = int64_t(g.n) * g.oh * g.ow;
  std::vector<float> patches(size_t(positions * taps));
#pragma omp parallel for schedule(static)
  for (int64_t pos = 0; pos < positions; ++pos) {
    int n, oy, ox;
    split_position(g, pos, &n, &oy, &ox);
    for (int r = 0; r < g.r; ++r)
      for (int s = 0; s < g.s; ++s) {
        float* dst = &patches[size_t(pos * taps + (int64_t(r) * g.s + s) * g.c)];
        const int64_t pixel = input_index(g, n, oy, ox, r, s);
        if (pixel < 0)
          std::fill(dst, dst + g.c, 0.f);
        else
          std::copy_n(&xs[size_t(pixel * g.c)], g.c, dst);
      }
  }
  return patches;
}

// y[pos][k] = sum over taps (r, s, c) of patches[pos][r, s, c] * w[k, r, s, c].
void run_forward(const Conv& g, const float* x, const float* w, float* y, float alpha, float beta) {
  const Rounding rounding = rounding_for(g.math);
  const std::vector<float> patches =
      im2col(g, to_channels_last(x, g.x_format, g.n, g.c, g.h, g.w, rounding));
  const std::vector<float> ws = filter_to_krsc(w, g, rounding);
  const int64_t taps = int64_t(g.r) * g.s * g.c;
  gemm_nt(int64_t(g.n) * g.oh * g.ow, g.k, taps,
          [&](int64_t pos, int64_t tap) { return patches[size_t(pos * taps + tap)]; },
          [&](int64_t k, int64_t tap) { return ws[size_t(k * taps + tap)]; },
          [&](int64_t pos, int64_t k, double v) {
            const int64_t plane = int64_t(g.oh) * g.ow;  // pos = n * plane + (oy * ow + ox)
            const int64_t at = g.y_format == CUDNN_TENSOR_NHWC
                                   ? pos * g.k + k
                                   : (pos / plane * g.k + k) * plane + pos % plane;
            blend(&y[size_t(at)], v, alpha, beta);
          });
}

// col[pos][r, s, c] = sum_k dy[pos][k] * w[k, r, s, c], then each col entry is added into the
// input pixel its tap reads (col2im), image by image.
void run_backward_data(const Conv& g, const float* w, const float* dy, float* dx, float alpha,
                       float beta) {
  const Rounding rounding = rounding_for(g.math);
  const std::vector<float> dys = to_channels_last(dy, g.y_format, g.n, g.k, g.oh, g.ow, rounding);
  const std::vector<float> ws = filter_to_krsc(w, g, rounding);
  const int64_t taps = int64_t(g.r) * g.s * g.c, positions = int64_t(g.n) * g.oh * g.ow;
  std::vector<double> col(size_t(positions * taps));
  gemm_nt(positions, taps, g.k,
          [&](int64_t pos, int64_t k) { return dys[size_t(pos * g.k + k)]; },
          [&](int64_t tap, int64_t k) { return ws[size_t(k * taps + tap)]; },
          [&](int64_t pos, int64_t tap, double v) { col[size_t(pos * taps + tap)] = v; });
  const int64_t image_pixels = int64_t(g.h) * g.w;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < g.n; ++n) {
    std::vector<double> acc(size_t(image_pixels * g.c), 0.0);  // this image's dx, [h][w][c]
    for (int oy = 0; oy < g.oh; ++oy)
      for (int ox = 0; ox < g.ow; ++ox) {
        const double* cp = &col[size_t(((int64_t(n) * g.oh + oy) * g.ow + ox) * taps)];
        for (int r = 0; r < g.r; ++r)
          for (int s = 0; s < g.s; ++s) {
            const int64_t pixel = input_index(g, n, oy, ox, r, s);
            if (pixel < 0) continue;
            double* ap = &acc[size_t((pixel - int64_t(n) * image_pixels) * g.c)];
            const double* tp = cp + (int64_t(r) * g.s + s) * g.c;
            for (int c = 0; c < g.c; ++c) ap[c] += tp[c];
          }
      }
    for (int iy = 0; iy < g.h; ++iy)
      for (int ix = 0; ix < g.w; ++ix)
        for (int c = 0; c < g.c; ++c)
          blend(&dx[tensor_offset(g.x_format, g.c, g.h, g.w, n, c, iy, ix)],
                acc[size_t((int64_t(iy) * g.w + ix) * g.c + c)], alpha, beta);
  }
}

// dw[k][r, s, c] = sum over positions of dy[pos][k] * patches[pos][r, s, c].
void run_backward_filter(const Conv& g, const float* x, const float* dy, float* dw, float alpha,
                         float beta) {
  const Rounding rounding = rounding_for(g.math);
  const std::vector<float> patches =
      im2col(g, to_channels_last(x, g.x_format, g.n, g.c, g.h, g.w, rounding));
  const std::vector<float> dys = to_channels_last(dy, g.y_format, g.n, g.k, g.oh, g.ow, rounding);
  const int64_t taps = int64_t(g.r) * g.s * g.c, positions = int64_t(g.n) * g.oh * g.ow;
  gemm_nt(g.k, taps, positions,
          [&](int64_t k, int64_t pos) { return dys[size_t(pos * g.k + k)]; },
          [&](int64_t tap, int64_t pos) { return patches[size_t(pos * taps + tap)]; },
          [&](int64_t k, int64_t tap, double v) {
            const int c = int(tap % g.c), s = int(tap / g.c % g.s), r = int(tap / (int64_t(g.c) * g.s));
            // The tap grid is the filter rotated by 180 degrees for CUDNN_CONVOLUTION.
            const int sr = g.flip ? g.r - 1 - r : r, ss = g.flip ? g.s - 1 - s : s;
            blend(&dw[tensor_offset(g.w_format, g.c, g.r, g.s, int(k), c, sr, ss)], v, alpha, beta);
          });
}

// Common checks of the three compute calls: pointers, workspace, device ranges. `in1`/`in2`
// are the inputs with their element counts; `out` the destination.
cudnnStatus_t check_call(const char* who, cudnnHandle_t handle, const void* alpha, const void* beta,
                         const void* in1, int64_t in1_elems, const char* in1_name, const void* in2,
                         int64_t in2_elems, const char* in2_name, void* out, int64_t out_elems,
                         const char* out_name, void* workspace, size_t workspace_bytes,
                         size_t needed_bytes, int algo) {
  if (!handle) return fail(CUDNN_STATUS_BAD_PARAM, std::string(who) + ": null handle");
  if (!alpha || !beta) return fail(CUDNN_STATUS_BAD_PARAM, std::string(who) + ": alpha or beta is null");
  if (!in1 || !in2 || !out)
    return fail(CUDNN_STATUS_BAD_PARAM, std::string(who) + ": a data pointer is null");
  if (workspace_bytes < needed_bytes)
    return fail(CUDNN_STATUS_BAD_PARAM,
                std::string(who) + ": algorithm " + std::to_string(algo) + " needs " +
                    std::to_string(needed_bytes) + " bytes of workspace, " +
                    std::to_string(workspace_bytes) + " given");
  if (workspace_bytes > 0 && !workspace)
    return fail(CUDNN_STATUS_BAD_PARAM,
                std::string(who) + ": null workspace with a nonzero workspace size");
  const struct {
    const void* p;
    int64_t elems;
    const char* name;
  } ranges[] = {{in1, in1_elems, in1_name}, {in2, in2_elems, in2_name}, {out, out_elems, out_name}};
  for (const auto& range : ranges) {
    if (!bp_emu::check_device_range(range.p, size_t(range.elems) * sizeof(float), who,
                                    std::string(range.name) + ": " + std::to_string(range.elems) +
                                        " floats"))
      return fail(CUDNN_STATUS_EXECUTION_FAILED, std::string(who) + ": " + range.name +
                                                     " is not device memory of that size");
  }
  if (workspace_bytes > 0 &&
      !bp_emu::check_device_range(workspace, workspace_bytes, who,
                                  "workspace: " + std::to_string(workspace_bytes) + " bytes"))
    return fail(CUDNN_STATUS_EXECUTION_FAILED, std::string(who) + ": the workspace is not device memory");
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t submit(const char* who, cudnnHandle_t handle, void* workspace, size_t workspace_bytes,
                     std::function<void()> compute) {
  const cudaError_t e = bp_emu::enqueue(handle->stream, who, [=] {
    if (workspace_bytes > 0) bp_emu::fill_nan_bytes(workspace, workspace_bytes);  // scratch garbage
    compute();
  });
  if (e != cudaSuccess)
    return fail(CUDNN_STATUS_EXECUTION_FAILED,
                std::string(who) + ": the stream refused the work: " + cudaGetErrorString(e));
  return CUDNN_STATUS_SUCCESS;
}

bool valid_format(cudnnTensorFormat_t f) { return f == CUDNN_TENSOR_NCHW || f == CUDNN_TENSOR_NHWC; }

}  // namespace

extern "C" {

size_t cudnnGetVersion(void) { return CUDNN_VERSION; }

const char* cudnnGetErrorString(cudnnStatus_t status) {
  switch (status) {
#define BP_CUDNN_NAME(s) \
  case s: return #s;
    BP_CUDNN_NAME(CUDNN_STATUS_SUCCESS)
    BP_CUDNN_NAME(CUDNN_STATUS_NOT_INITIALIZED)
    BP_CUDNN_NAME(CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH)
    BP_CUDNN_NAME(CUDNN_STATUS_SERIALIZATION_VERSION_MISMATCH)
    BP_CUDNN_NAME(CUDNN_STATUS_DEPRECATED)
    BP_CUDNN_NAME(CUDNN_STATUS_LICENSE_ERROR)
    BP_CUDNN_NAME(CUDNN_STATUS_RUNTIME_IN_PROGRESS)
    BP_CUDNN_NAME(CUDNN_STATUS_RUNTIME_FP_OVERFLOW)
    BP_CUDNN_NAME(CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED)
    BP_CUDNN_NAME(CUDNN_STATUS_BAD_PARAM)
    BP_CUDNN_NAME(CUDNN_STATUS_BAD_PARAM_NULL_POINTER)
    BP_CUDNN_NAME(CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER)
    BP_CUDNN_NAME(CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED)
    BP_CUDNN_NAME(CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND)
    BP_CUDNN_NAME(CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT)
    BP_CUDNN_NAME(CUDNN_STATUS_BAD_PARAM_STREAM_MISMATCH)
    BP_CUDNN_NAME(CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH)
    BP_CUDNN_NAME(CUDNN_STATUS_BAD_PARAM_DUPLICATED_ENTRIES)
    BP_CUDNN_NAME(CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE)
    BP_CUDNN_NAME(CUDNN_STATUS_BAD_PARAM_CUDA_GRAPH_MISMATCH)
    BP_CUDNN_NAME(CUDNN_STATUS_BAD_PARAM_DESCRIPTOR_TYPE)
    BP_CUDNN_NAME(CUDNN_STATUS_NOT_SUPPORTED)
    BP_CUDNN_NAME(CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN)
    BP_CUDNN_NAME(CUDNN_STATUS_NOT_SUPPORTED_SHAPE)
    BP_CUDNN_NAME(CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE)
    BP_CUDNN_NAME(CUDNN_STATUS_NOT_SUPPORTED_LAYOUT)
    BP_CUDNN_NAME(CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDA_DRIVER)
    BP_CUDNN_NAME(CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDART)
    BP_CUDNN_NAME(CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH)
    BP_CUDNN_NAME(CUDNN_STATUS_NOT_SUPPORTED_RUNTIME_PREREQUISITE_MISSING)
    BP_CUDNN_NAME(CUDNN_STATUS_NOT_SUPPORTED_SUBLIBRARY_UNAVAILABLE)
    BP_CUDNN_NAME(CUDNN_STATUS_NOT_SUPPORTED_SHARED_MEMORY_INSUFFICIENT)
    BP_CUDNN_NAME(CUDNN_STATUS_NOT_SUPPORTED_PADDING)
    BP_CUDNN_NAME(CUDNN_STATUS_NOT_SUPPORTED_BAD_LAUNCH_PARAM)
    BP_CUDNN_NAME(CUDNN_STATUS_NOT_SUPPORTED_CUDA_GRAPH_NATIVE_API)
    BP_CUDNN_NAME(CUDNN_STATUS_NOT_SUPPORTED_INVALID_DYNAMIC_SHAPE)
    BP_CUDNN_NAME(CUDNN_STATUS_INTERNAL_ERROR)
    BP_CUDNN_NAME(CUDNN_STATUS_INTERNAL_ERROR_COMPILATION_FAILED)
    BP_CUDNN_NAME(CUDNN_STATUS_INTERNAL_ERROR_UNEXPECTED_VALUE)
    BP_CUDNN_NAME(CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED)
    BP_CUDNN_NAME(CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED)
    BP_CUDNN_NAME(CUDNN_STATUS_INTERNAL_ERROR_BAD_LAUNCH_PARAM)
    BP_CUDNN_NAME(CUDNN_STATUS_INTERNAL_ERROR_TEXTURE_CREATION_FAILED)
    BP_CUDNN_NAME(CUDNN_STATUS_EXECUTION_FAILED)
    BP_CUDNN_NAME(CUDNN_STATUS_EXECUTION_FAILED_CUDA_DRIVER)
    BP_CUDNN_NAME(CUDNN_STATUS_EXECUTION_FAILED_CUBLAS)
    BP_CUDNN_NAME(CUDNN_STATUS_EXECUTION_FAILED_CUDART)
    BP_CUDNN_NAME(CUDNN_STATUS_EXECUTION_FAILED_CURAND)
    BP_CUDNN_NAME(CUDNN_STATUS_INVALID_VALUE)
#undef BP_CUDNN_NAME
    default: return "CUDNN_UNKNOWN_STATUS_FOUND";
  }
}

void cudnnGetLastErrorString(char* message, size_t max_size) {
  if (!message || max_size == 0) return;
  const size_t n = std::min(max_size - 1, g_last_error.size());
  std::memcpy(message, g_last_error.data(), n);
  message[n] = '\0';
}

cudnnStatus_t cudnnCreate(cudnnHandle_t* handle) {
  if (!handle) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnCreate: null handle pointer");
  *handle = new cudnnContext();
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroy(cudnnHandle_t handle) {
  if (!handle) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnDestroy: null handle");
  delete handle;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t stream) {
  if (!handle) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnSetStream: null handle");
  handle->stream = stream;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetStream(cudnnHandle_t handle, cudaStream_t* stream) {
  if (!handle || !stream) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnGetStream: null argument");
  *stream = handle->stream;
  return CUDNN_STATUS_SUCCESS;
}

// --- tensor descriptors ---
cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t* desc) {
  if (!desc) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnCreateTensorDescriptor: null pointer");
  *desc = new cudnnTensorStruct();
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t desc, cudnnTensorFormat_t format,
                                         cudnnDataType_t type, int n, int c, int h, int w) {
  const char* who = "cudnnSetTensor4dDescriptor";
  if (!desc) return fail(CUDNN_STATUS_BAD_PARAM, std::string(who) + ": null descriptor");
  if (n <= 0 || c <= 0 || h <= 0 || w <= 0)
    return fail(CUDNN_STATUS_BAD_PARAM, std::string(who) + ": dimensions " + shape(n, c, h, w));
  if (!valid_format(format) && format != CUDNN_TENSOR_NCHW_VECT_C)
    return fail(CUDNN_STATUS_BAD_PARAM, std::string(who) + ": invalid format");
  if (format == CUDNN_TENSOR_NCHW_VECT_C || type != CUDNN_DATA_FLOAT)
    return fail(CUDNN_STATUS_NOT_SUPPORTED,
                std::string(who) + ": the emulator supports float NCHW and NHWC tensors only");
  if (int64_t(n) * c * h * w > INT_MAX)
    return fail(CUDNN_STATUS_NOT_SUPPORTED, std::string(who) + ": more than 2^31 elements");
  desc->set = true;
  desc->format = format;
  desc->type = type;
  desc->n = n;
  desc->c = c;
  desc->h = h;
  desc->w = w;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t desc) {
  delete desc;  // destroying null is a no-op, as freeing
  return CUDNN_STATUS_SUCCESS;
}

// --- filter descriptors ---
cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t* desc) {
  if (!desc) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnCreateFilterDescriptor: null pointer");
  *desc = new cudnnFilterStruct();
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t desc, cudnnDataType_t type,
                                         cudnnTensorFormat_t format, int k, int c, int h, int w) {
  const char* who = "cudnnSetFilter4dDescriptor";
  if (!desc) return fail(CUDNN_STATUS_BAD_PARAM, std::string(who) + ": null descriptor");
  if (k <= 0 || c <= 0 || h <= 0 || w <= 0)
    return fail(CUDNN_STATUS_BAD_PARAM, std::string(who) + ": dimensions " + shape(k, c, h, w));
  if (!valid_format(format) && format != CUDNN_TENSOR_NCHW_VECT_C)
    return fail(CUDNN_STATUS_BAD_PARAM, std::string(who) + ": invalid format");
  if (format == CUDNN_TENSOR_NCHW_VECT_C || type != CUDNN_DATA_FLOAT)
    return fail(CUDNN_STATUS_NOT_SUPPORTED,
                std::string(who) + ": the emulator supports float KCRS and KRSC filters only");
  desc->set = true;
  desc->type = type;
  desc->format = format;
  desc->k = k;
  desc->c = c;
  desc->r = h;
  desc->s = w;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t desc) {
  delete desc;
  return CUDNN_STATUS_SUCCESS;
}

// --- convolution descriptors ---
cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t* desc) {
  if (!desc) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnCreateConvolutionDescriptor: null pointer");
  *desc = new cudnnConvolutionStruct();
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t desc) {
  delete desc;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t desc, int pad_h,
                                              int pad_w, int u, int v, int dilation_h,
                                              int dilation_w, cudnnConvolutionMode_t mode,
                                              cudnnDataType_t compute) {
  const char* who = "cudnnSetConvolution2dDescriptor";
  if (!desc) return fail(CUDNN_STATUS_BAD_PARAM, std::string(who) + ": null descriptor");
  if (pad_h < 0 || pad_w < 0 || u <= 0 || v <= 0 || dilation_h <= 0 || dilation_w <= 0)
    return fail(CUDNN_STATUS_BAD_PARAM,
                std::string(who) + ": pads must be >= 0, strides and dilations > 0");
  if (mode != CUDNN_CONVOLUTION && mode != CUDNN_CROSS_CORRELATION)
    return fail(CUDNN_STATUS_BAD_PARAM, std::string(who) + ": invalid mode");
  if (compute != CUDNN_DATA_FLOAT)
    return fail(CUDNN_STATUS_NOT_SUPPORTED,
                std::string(who) + ": the emulator computes float convolutions only");
  desc->set = true;
  desc->pad_h = pad_h;
  desc->pad_w = pad_w;
  desc->stride_h = u;
  desc->stride_w = v;
  desc->dilation_h = dilation_h;
  desc->dilation_w = dilation_w;
  desc->mode = mode;
  desc->compute = compute;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t desc, cudnnMathType_t math) {
  if (!desc) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnSetConvolutionMathType: null descriptor");
  if (math != CUDNN_DEFAULT_MATH && math != CUDNN_TENSOR_OP_MATH &&
      math != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION && math != CUDNN_FMA_MATH)
    return fail(CUDNN_STATUS_BAD_PARAM, "cudnnSetConvolutionMathType: invalid math type");
  desc->math = math;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionMathType(cudnnConvolutionDescriptor_t desc, cudnnMathType_t* math) {
  if (!desc || !math) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnGetConvolutionMathType: null argument");
  *math = desc->math;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolution2dForwardOutputDim(const cudnnConvolutionDescriptor_t conv,
                                                    const cudnnTensorDescriptor_t x,
                                                    const cudnnFilterDescriptor_t w, int* n,
                                                    int* c, int* h, int* wout) {
  const char* who = "cudnnGetConvolution2dForwardOutputDim";
  if (!conv || !x || !w || !n || !c || !h || !wout)
    return fail(CUDNN_STATUS_BAD_PARAM, std::string(who) + ": null argument");
  if (!conv->set || !x->set || !w->set)
    return fail(CUDNN_STATUS_BAD_PARAM, std::string(who) + ": a descriptor was never set");
  if (x->c != w->c)
    return fail(CUDNN_STATUS_BAD_PARAM, std::string(who) + ": input and filter channels differ");
  const int oh = output_extent(x->h, conv->pad_h, w->r, conv->dilation_h, conv->stride_h);
  const int ow = output_extent(x->w, conv->pad_w, w->s, conv->dilation_w, conv->stride_w);
  if (oh <= 0 || ow <= 0)
    return fail(CUDNN_STATUS_BAD_PARAM, std::string(who) + ": the filter does not fit the padded input");
  *n = x->n;
  *c = w->k;
  *h = oh;
  *wout = ow;
  return CUDNN_STATUS_SUCCESS;
}

// --- heuristics ---
cudnnStatus_t cudnnGetConvolutionForwardAlgorithmMaxCount(cudnnHandle_t handle, int* count) {
  if (!handle || !count) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnGetConvolutionForwardAlgorithmMaxCount: null argument");
  *count = CUDNN_CONVOLUTION_FWD_ALGO_COUNT;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithmMaxCount(cudnnHandle_t handle, int* count) {
  if (!handle || !count) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnGetConvolutionBackwardDataAlgorithmMaxCount: null argument");
  *count = CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(cudnnHandle_t handle, int* count) {
  if (!handle || !count) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnGetConvolutionBackwardFilterAlgorithmMaxCount: null argument");
  *count = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t handle,
                                                     const cudnnTensorDescriptor_t x,
                                                     const cudnnFilterDescriptor_t w,
                                                     const cudnnConvolutionDescriptor_t conv,
                                                     const cudnnTensorDescriptor_t y, int requested,
                                                     int* returned, cudnnConvolutionFwdAlgoPerf_t* perfs) {
  const char* who = "cudnnGetConvolutionForwardAlgorithm_v7";
  if (!handle || !returned || !perfs || requested <= 0)
    return fail(CUDNN_STATUS_BAD_PARAM, std::string(who) + ": null argument or requestedAlgoCount <= 0");
  Conv g;
  if (const cudnnStatus_t s = make_conv(who, x, w, conv, y, &g)) return s;
  *returned = fill_perfs(g, fwd_preference(g), requested, perfs, fwd_workspace,
                         [](cudnnConvolutionFwdAlgo_t) { return CUDNN_DETERMINISTIC; });
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t handle,
                                                          const cudnnFilterDescriptor_t w,
                                                          const cudnnTensorDescriptor_t dy,
                                                          const cudnnConvolutionDescriptor_t conv,
                                                          const cudnnTensorDescriptor_t dx,
                                                          int requested, int* returned,
                                                          cudnnConvolutionBwdDataAlgoPerf_t* perfs) {
  const char* who = "cudnnGetConvolutionBackwardDataAlgorithm_v7";
  if (!handle || !returned || !perfs || requested <= 0)
    return fail(CUDNN_STATUS_BAD_PARAM, std::string(who) + ": null argument or requestedAlgoCount <= 0");
  Conv g;
  if (const cudnnStatus_t s = make_conv(who, dx, w, conv, dy, &g)) return s;
  *returned = fill_perfs(g, data_preference(), requested, perfs, data_workspace, data_determinism);
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnnHandle_t handle,
                                                            const cudnnTensorDescriptor_t x,
                                                            const cudnnTensorDescriptor_t dy,
                                                            const cudnnConvolutionDescriptor_t conv,
                                                            const cudnnFilterDescriptor_t dw,
                                                            int requested, int* returned,
                                                            cudnnConvolutionBwdFilterAlgoPerf_t* perfs) {
  const char* who = "cudnnGetConvolutionBackwardFilterAlgorithm_v7";
  if (!handle || !returned || !perfs || requested <= 0)
    return fail(CUDNN_STATUS_BAD_PARAM, std::string(who) + ": null argument or requestedAlgoCount <= 0");
  Conv g;
  if (const cudnnStatus_t s = make_conv(who, x, dw, conv, dy, &g)) return s;
  *returned = fill_perfs(g, filter_preference(), requested, perfs, filter_workspace, filter_determinism);
  return CUDNN_STATUS_SUCCESS;
}

// --- workspace queries ---
cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t handle,
                                                      const cudnnTensorDescriptor_t x,
                                                      const cudnnFilterDescriptor_t w,
                                                      const cudnnConvolutionDescriptor_t conv,
                                                      const cudnnTensorDescriptor_t y,
                                                      cudnnConvolutionFwdAlgo_t algo, size_t* bytes) {
  const char* who = "cudnnGetConvolutionForwardWorkspaceSize";
  if (!handle || !bytes) return fail(CUDNN_STATUS_BAD_PARAM, std::string(who) + ": null argument");
  Conv g;
  if (const cudnnStatus_t s = make_conv(who, x, w, conv, y, &g)) return s;
  if (const cudnnStatus_t s = fwd_workspace(g, algo, bytes))
    return fail(s, std::string(who) + ": algorithm " + std::to_string(int(algo)) +
                       " does not support this convolution");
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t handle,
                                                           const cudnnFilterDescriptor_t w,
                                                           const cudnnTensorDescriptor_t dy,
                                                           const cudnnConvolutionDescriptor_t conv,
                                                           const cudnnTensorDescriptor_t dx,
                                                           cudnnConvolutionBwdDataAlgo_t algo,
                                                           size_t* bytes) {
  const char* who = "cudnnGetConvolutionBackwardDataWorkspaceSize";
  if (!handle || !bytes) return fail(CUDNN_STATUS_BAD_PARAM, std::string(who) + ": null argument");
  Conv g;
  if (const cudnnStatus_t s = make_conv(who, dx, w, conv, dy, &g)) return s;
  if (const cudnnStatus_t s = data_workspace(g, algo, bytes))
    return fail(s, std::string(who) + ": algorithm " + std::to_string(int(algo)) +
                       " does not support this convolution");
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnnHandle_t handle,
                                                             const cudnnTensorDescriptor_t x,
                                                             const cudnnTensorDescriptor_t dy,
                                                             const cudnnConvolutionDescriptor_t conv,
                                                             const cudnnFilterDescriptor_t dw,
                                                             cudnnConvolutionBwdFilterAlgo_t algo,
                                                             size_t* bytes) {
  const char* who = "cudnnGetConvolutionBackwardFilterWorkspaceSize";
  if (!handle || !bytes) return fail(CUDNN_STATUS_BAD_PARAM, std::string(who) + ": null argument");
  Conv g;
  if (const cudnnStatus_t s = make_conv(who, x, dw, conv, dy, &g)) return s;
  if (const cudnnStatus_t s = filter_workspace(g, algo, bytes))
    return fail(s, std::string(who) + ": algorithm " + std::to_string(int(algo)) +
                       " does not support this convolution");
  return CUDNN_STATUS_SUCCESS;
}

// --- the convolutions ---
cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t handle, const void* alpha,
                                      const cudnnTensorDescriptor_t xDesc, const void* x,
                                      const cudnnFilterDescriptor_t wDesc, const void* w,
                                      const cudnnConvolutionDescriptor_t convDesc,
                                      cudnnConvolutionFwdAlgo_t algo, void* workSpace,
                                      size_t workSpaceSizeInBytes, const void* beta,
                                      const cudnnTensorDescriptor_t yDesc, void* y) {
  const char* who = "cudnnConvolutionForward";
  Conv g;
  if (const cudnnStatus_t s = make_conv(who, xDesc, wDesc, convDesc, yDesc, &g)) return s;
  size_t needed = 0;
  if (const cudnnStatus_t s = fwd_workspace(g, algo, &needed))
    return fail(s, std::string(who) + ": algorithm " + std::to_string(int(algo)) +
                       " does not support this convolution");
  if (const cudnnStatus_t s = check_call(who, handle, alpha, beta, x, g.x_elems(), "x", w,
                                         g.w_elems(), "w", y, g.y_elems(), "y", workSpace,
                                         workSpaceSizeInBytes, needed, int(algo)))
    return s;
  const float a = *static_cast<const float*>(alpha), b = *static_cast<const float*>(beta);
  const float* xp = static_cast<const float*>(x);
  const float* wp = static_cast<const float*>(w);
  float* yp = static_cast<float*>(y);
  return submit(who, handle, workSpace, workSpaceSizeInBytes,
                [=] { run_forward(g, xp, wp, yp, a, b); });
}

cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t handle, const void* alpha,
                                           const cudnnFilterDescriptor_t wDesc, const void* w,
                                           const cudnnTensorDescriptor_t dyDesc, const void* dy,
                                           const cudnnConvolutionDescriptor_t convDesc,
                                           cudnnConvolutionBwdDataAlgo_t algo, void* workSpace,
                                           size_t workSpaceSizeInBytes, const void* beta,
                                           const cudnnTensorDescriptor_t dxDesc, void* dx) {
  const char* who = "cudnnConvolutionBackwardData";
  Conv g;
  if (const cudnnStatus_t s = make_conv(who, dxDesc, wDesc, convDesc, dyDesc, &g)) return s;
  size_t needed = 0;
  if (const cudnnStatus_t s = data_workspace(g, algo, &needed))
    return fail(s, std::string(who) + ": algorithm " + std::to_string(int(algo)) +
                       " does not support this convolution");
  if (const cudnnStatus_t s = check_call(who, handle, alpha, beta, w, g.w_elems(), "w", dy,
                                         g.y_elems(), "dy", dx, g.x_elems(), "dx", workSpace,
                                         workSpaceSizeInBytes, needed, int(algo)))
    return s;
  const float a = *static_cast<const float*>(alpha), b = *static_cast<const float*>(beta);
  const float* wp = static_cast<const float*>(w);
  const float* dyp = static_cast<const float*>(dy);
  float* dxp = static_cast<float*>(dx);
  return submit(who, handle, workSpace, workSpaceSizeInBytes,
                [=] { run_backward_data(g, wp, dyp, dxp, a, b); });
}

cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t handle, const void* alpha,
                                             const cudnnTensorDescriptor_t xDesc, const void* x,
                                             const cudnnTensorDescriptor_t dyDesc, const void* dy,
                                             const cudnnConvolutionDescriptor_t convDesc,
                                             cudnnConvolutionBwdFilterAlgo_t algo, void* workSpace,
                                             size_t workSpaceSizeInBytes, const void* beta,
                                             const cudnnFilterDescriptor_t dwDesc, void* dw) {
  const char* who = "cudnnConvolutionBackwardFilter";
  Conv g;
  if (const cudnnStatus_t s = make_conv(who, xDesc, dwDesc, convDesc, dyDesc, &g)) return s;
  size_t needed = 0;
  if (const cudnnStatus_t s = filter_workspace(g, algo, &needed))
    return fail(s, std::string(who) + ": algorithm " + std::to_string(int(algo)) +
                       " does not support this convolution");
  if (const cudnnStatus_t s = check_call(who, handle, alpha, beta, x, g.x_elems(), "x", dy,
                                         g.y_elems(), "dy", dw, g.w_elems(), "dw", workSpace,
                                         workSpaceSizeInBytes, needed, int(algo)))
    return s;
  const float a = *static_cast<const float*>(alpha), b = *static_cast<const float*>(beta);
  const float* xp = static_cast<const float*>(x);
  const float* dyp = static_cast<const float*>(dy);
  float* dwp = static_cast<float*>(dw);
  return submit(who, handle, workSpace, workSpaceSizeInBytes,
                [=] { run_backward_filter(g, xp, dyp, dwp, a, b); });
}

}  // extern "C"
