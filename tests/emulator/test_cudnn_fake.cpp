// The emulator's cuDNN fake against float64 references written from the definition of the
// three convolution ops (forward, gradient of the input, gradient of the filter), for NCHW/KCRS
// and NHWC/KRSC, strides, dilations, pads, odd sizes, both convolution modes and alpha/beta.
#include <cudnn.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "emu_test_helpers.h"
#include "runtime.h"

#pragma clang diagnostic ignored "-Wdeprecated-declarations"

namespace {

using emu_test::DeviceFloats;
using emu_test::Exact;

struct Geometry {
  int n, c, h, w;  // input
  int k, r, s;     // filter
  int pad_h, pad_w, stride_h, stride_w, dil_h, dil_w;
  cudnnConvolutionMode_t mode;
  cudnnTensorFormat_t format;  // tensors, and the filter (NCHW = KCRS, NHWC = KRSC)

  int oh() const { return (h + 2 * pad_h - (r - 1) * dil_h - 1) / stride_h + 1; }
  int ow() const { return (w + 2 * pad_w - (s - 1) * dil_w - 1) / stride_w + 1; }
  size_t x_size() const { return size_t(n) * c * h * w; }
  size_t y_size() const { return size_t(n) * k * oh() * ow(); }
  size_t w_size() const { return size_t(k) * c * r * s; }
  std::string name() const {
    return std::string(format == CUDNN_TENSOR_NHWC ? "NHWC" : "NCHW") + " n" + std::to_string(n) +
           " c" + std::to_string(c) + " " + std::to_string(h) + "x" + std::to_string(w) + " k" +
           std::to_string(k) + " " + std::to_string(r) + "x" + std::to_string(s) + " pad " +
           std::to_string(pad_h) + "," + std::to_string(pad_w) + " stride " +
           std::to_string(stride_h) + "," + std::to_string(stride_w) + " dil " +
           std::to_string(dil_h) + "," + std::to_string(dil_w) +
           (mode == CUDNN_CONVOLUTION ? " conv" : " xcorr");
  }
};

// Index of logical element (a, b, y, x) — (n, c, h, w) or (k, c, r, s) — of an A x B x Y x X
// array: NCHW/KCRS keeps that order, NHWC/KRSC moves b innermost.
size_t at(cudnnTensorFormat_t f, int B, int Y, int X, int a, int b, int y, int x) {
  if (f == CUDNN_TENSOR_NCHW) return ((size_t(a) * B + b) * Y + y) * X + x;
  return ((size_t(a) * Y + y) * X + x) * B + b;
}

// Calls visit(n, k, oy, ox, c, iy, ix, fr, fs) for every multiply of the convolution: output
// (n, k, oy, ox) takes input (n, c, iy, ix) times filter element (k, c, fr, fs).
void for_each_term(const Geometry& g,
                   const std::function<void(int, int, int, int, int, int, int, int, int)>& visit) {
  for (int n = 0; n < g.n; ++n)
    for (int k = 0; k < g.k; ++k)
      for (int oy = 0; oy < g.oh(); ++oy)
        for (int ox = 0; ox < g.ow(); ++ox)
          for (int c = 0; c < g.c; ++c)
            for (int r = 0; r < g.r; ++r)
              for (int s = 0; s < g.s; ++s) {
                const int iy = oy * g.stride_h - g.pad_h + r * g.dil_h;
                const int ix = ox * g.stride_w - g.pad_w + s * g.dil_w;
                if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
                // Convolution proper applies the filter rotated by 180 degrees.
                const int fr = g.mode == CUDNN_CONVOLUTION ? g.r - 1 - r : r;
                const int fs = g.mode == CUDNN_CONVOLUTION ? g.s - 1 - s : s;
                visit(n, k, oy, ox, c, iy, ix, fr, fs);
              }
}

enum class Op { Forward, BackwardData, BackwardFilter };
const char* op_name(Op op) {
  return op == Op::Forward ? "forward" : op == Op::BackwardData ? "backward-data" : "backward-filter";
}

// Expected destination: alpha * op + beta * prior (no prior term when beta == 0).
// Forward: a = x, b = w -> y. BackwardData: a = w, b = dy -> dx. BackwardFilter: a = x, b = dy -> dw.
std::vector<Exact> reference(const Geometry& g, Op op, const std::vector<float>& a,
                             const std::vector<float>& b, double alpha, double beta,
                             const std::vector<float>& prior) {
  std::vector<Exact> out(prior.size());
  const cudnnTensorFormat_t f = g.format;
  for_each_term(g, [&](int n, int k, int oy, int ox, int c, int iy, int ix, int fr, int fs) {
    const size_t xi = at(f, g.c, g.h, g.w, n, c, iy, ix), wi = at(f, g.c, g.r, g.s, k, c, fr, fs);
    const size_t yi = at(f, g.k, g.oh(), g.ow(), n, k, oy, ox);
    switch (op) {
      case Op::Forward: out[yi].add(alpha * double(a[xi]) * b[wi]); break;
      case Op::BackwardData: out[xi].add(alpha * double(a[wi]) * b[yi]); break;
      case Op::BackwardFilter: out[wi].add(alpha * double(a[xi]) * b[yi]); break;
    }
  });
  if (beta != 0)
    for (size_t i = 0; i < out.size(); ++i) out[i].add(beta * double(prior[i]));
  return out;
}

// Descriptors for one geometry, owned.
struct Descriptors {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  Descriptors(const Geometry& g, cudnnMathType_t math) {
    EXPECT_EQ(cudnnCreateTensorDescriptor(&x), CUDNN_STATUS_SUCCESS);
    EXPECT_EQ(cudnnCreateTensorDescriptor(&y), CUDNN_STATUS_SUCCESS);
    EXPECT_EQ(cudnnCreateFilterDescriptor(&w), CUDNN_STATUS_SUCCESS);
    EXPECT_EQ(cudnnCreateConvolutionDescriptor(&conv), CUDNN_STATUS_SUCCESS);
    EXPECT_EQ(cudnnSetTensor4dDescriptor(x, g.format, CUDNN_DATA_FLOAT, g.n, g.c, g.h, g.w), CUDNN_STATUS_SUCCESS);
    EXPECT_EQ(cudnnSetTensor4dDescriptor(y, g.format, CUDNN_DATA_FLOAT, g.n, g.k, g.oh(), g.ow()), CUDNN_STATUS_SUCCESS);
    EXPECT_EQ(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, g.format, g.k, g.c, g.r, g.s), CUDNN_STATUS_SUCCESS);
    EXPECT_EQ(cudnnSetConvolution2dDescriptor(conv, g.pad_h, g.pad_w, g.stride_h, g.stride_w,
                                              g.dil_h, g.dil_w, g.mode, CUDNN_DATA_FLOAT),
              CUDNN_STATUS_SUCCESS);
    EXPECT_EQ(cudnnSetConvolutionMathType(conv, math), CUDNN_STATUS_SUCCESS);
  }
  ~Descriptors() {
    cudnnDestroyConvolutionDescriptor(conv);
    cudnnDestroyFilterDescriptor(w);
    cudnnDestroyTensorDescriptor(y);
    cudnnDestroyTensorDescriptor(x);
  }
};

struct Handle {
  cudnnHandle_t h = nullptr;
  Handle() { EXPECT_EQ(cudnnCreate(&h), CUDNN_STATUS_SUCCESS); }
  ~Handle() { cudnnDestroy(h); }
};

// The algorithms the v7 heuristics call supported for `op`, each with its workspace size.
std::vector<std::pair<int, size_t>> supported_algorithms(cudnnHandle_t h, const Descriptors& d, Op op) {
  std::vector<std::pair<int, size_t>> out;
  int count = 0;
  if (op == Op::Forward) {
    cudnnConvolutionFwdAlgoPerf_t perfs[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    EXPECT_EQ(cudnnGetConvolutionForwardAlgorithm_v7(h, d.x, d.w, d.conv, d.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &count, perfs), CUDNN_STATUS_SUCCESS);
    for (int i = 0; i < count; ++i)
      if (perfs[i].status == CUDNN_STATUS_SUCCESS) out.push_back({perfs[i].algo, perfs[i].memory});
  } else if (op == Op::BackwardData) {
    cudnnConvolutionBwdDataAlgoPerf_t perfs[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    EXPECT_EQ(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d.w, d.y, d.conv, d.x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &count, perfs), CUDNN_STATUS_SUCCESS);
    for (int i = 0; i < count; ++i)
      if (perfs[i].status == CUDNN_STATUS_SUCCESS) out.push_back({perfs[i].algo, perfs[i].memory});
  } else {
    cudnnConvolutionBwdFilterAlgoPerf_t perfs[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    EXPECT_EQ(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d.x, d.y, d.conv, d.w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &count, perfs), CUDNN_STATUS_SUCCESS);
    for (int i = 0; i < count; ++i)
      if (perfs[i].status == CUDNN_STATUS_SUCCESS) out.push_back({perfs[i].algo, perfs[i].memory});
  }
  EXPECT_FALSE(out.empty()) << op_name(op) << ": no supported algorithm";
  return out;
}

cudnnStatus_t launch(cudnnHandle_t h, const Descriptors& d, Op op, int algo, const float* a,
                     const float* b, float* dst, void* ws, size_t ws_bytes, float alpha, float beta) {
  switch (op) {
    case Op::Forward:
      return cudnnConvolutionForward(h, &alpha, d.x, a, d.w, b, d.conv, cudnnConvolutionFwdAlgo_t(algo),
                                     ws, ws_bytes, &beta, d.y, dst);
    case Op::BackwardData:
      return cudnnConvolutionBackwardData(h, &alpha, d.w, a, d.y, b, d.conv,
                                          cudnnConvolutionBwdDataAlgo_t(algo), ws, ws_bytes, &beta, d.x, dst);
    case Op::BackwardFilter:
      return cudnnConvolutionBackwardFilter(h, &alpha, d.x, a, d.y, b, d.conv,
                                            cudnnConvolutionBwdFilterAlgo_t(algo), ws, ws_bytes, &beta, d.w, dst);
  }
  return CUDNN_STATUS_BAD_PARAM;
}

// Sizes of (a, b, dst) for an op.
void op_sizes(const Geometry& g, Op op, size_t* a, size_t* b, size_t* dst) {
  switch (op) {
    case Op::Forward: *a = g.x_size(); *b = g.w_size(); *dst = g.y_size(); break;
    case Op::BackwardData: *a = g.w_size(); *b = g.y_size(); *dst = g.x_size(); break;
    case Op::BackwardFilter: *a = g.x_size(); *b = g.y_size(); *dst = g.w_size(); break;
  }
}

// Runs `op` with every supported algorithm and checks each result against the reference
// within rel (relative to the sum of |terms|). A NaN prior with beta == 0 must not leak in.
// Returns the last result (for further checks).
std::vector<float> check_op(const Geometry& g, Op op, cudnnMathType_t math, float alpha, float beta,
                            bool nan_prior, double rel, uint32_t seed) {
  Handle h;
  Descriptors d(g, math);
  size_t na, nb, nd;
  op_sizes(g, op, &na, &nb, &nd);
  const auto a = emu_test::random_floats(na, seed), b = emu_test::random_floats(nb, seed + 1);
  const auto prior = nan_prior ? emu_test::nan_floats(nd) : emu_test::random_floats(nd, seed + 2);
  const auto expected = reference(g, op, a, b, alpha, beta, prior);
  DeviceFloats da(a), db(b), dst(nd);
  std::vector<float> got;
  for (const auto& [algo, bytes] : supported_algorithms(h.h, d, op)) {
    dst.upload(prior);
    DeviceFloats ws(bytes / sizeof(float) + 1);
    EXPECT_EQ(launch(h.h, d, op, algo, da.get(), db.get(), dst.get(), ws.get(), bytes, alpha, beta),
              CUDNN_STATUS_SUCCESS);
    got = dst.download();
    EXPECT_TRUE(emu_test::within(got, expected, rel,
                                 std::string(op_name(op)) + " algo " + std::to_string(algo) + " " + g.name()));
  }
  return got;
}

const Geometry kGeometries[] = {
    // NHWC/KRSC, stride 2, odd sizes, symmetric pad
    {2, 3, 9, 7, 4, 3, 3, 1, 1, 2, 2, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_TENSOR_NHWC},
    // NCHW/KCRS, rectangular filter, unequal pads
    {3, 2, 11, 8, 5, 5, 3, 2, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_TENSOR_NCHW},
    // NHWC, true convolution (flipped filter), mixed strides, dilation
    {1, 4, 10, 9, 3, 2, 3, 0, 2, 1, 2, 2, 1, CUDNN_CONVOLUTION, CUDNN_TENSOR_NHWC},
    // NCHW 1x1 filter, stride 2, true convolution
    {2, 5, 7, 7, 2, 1, 1, 0, 0, 2, 2, 1, 1, CUDNN_CONVOLUTION, CUDNN_TENSOR_NCHW},
    // MNIST-like: one input channel, 5x5 'same'
    {2, 1, 28, 28, 8, 5, 5, 2, 2, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_TENSOR_NHWC},
    // NCHW 3x3 stride 1 (Winograd/FFT eligible) with many channels
    {2, 16, 6, 5, 3, 3, 3, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_TENSOR_NCHW},
};

constexpr Op kOps[] = {Op::Forward, Op::BackwardData, Op::BackwardFilter};
constexpr double kFp32Rel = 1e-6;  // float64 accumulation, one rounding to float
// TF32: each input within 2^-11 relative, so each product within ~2^-10.
const double kTf32Rel = std::ldexp(1.0, -10) + std::ldexp(1.0, -21) + kFp32Rel;

}  // namespace

TEST(CudnnFake, AlphaBetaBlendInFp32) {
  uint32_t seed = 100;
  for (const Geometry& g : kGeometries)
    for (Op op : kOps) check_op(g, op, CUDNN_FMA_MATH, 0.75f, -1.25f, false, kFp32Rel, seed += 7);
}

TEST(CudnnFake, BetaZeroIgnoresNaNDestination) {
  uint32_t seed = 200;
  for (const Geometry& g : kGeometries)
    for (Op op : kOps) check_op(g, op, CUDNN_FMA_MATH, 1.f, 0.f, true, kFp32Rel, seed += 7);
}

TEST(CudnnFake, DefaultMathRoundsFloatInputsToTf32) {
  uint32_t seed = 300;
  const Geometry& g = kGeometries[4];
  for (Op op : kOps) {
    for (cudnnMathType_t math : {CUDNN_DEFAULT_MATH, CUDNN_TENSOR_OP_MATH}) {
      const auto got = check_op(g, op, math, 1.f, 0.f, false, kTf32Rel, seed += 7);
      // The rounding shows: the same data is not reproduced to FP32 accuracy.
      Handle h;
      size_t na, nb, nd;
      op_sizes(g, op, &na, &nb, &nd);
      const auto expected = reference(g, op, emu_test::random_floats(na, seed),
                                      emu_test::random_floats(nb, seed + 1), 1.0, 0.0,
                                      std::vector<float>(nd));
      EXPECT_FALSE(emu_test::within(got, expected, kFp32Rel, "TF32 result at FP32 tolerance"))
          << op_name(op) << " math " << math;
    }
  }
}

TEST(CudnnFake, FmaMathKeepsLowMantissaBits) {
  // 1x1 convolution of x = 1 + 2^-12 with w = 1: exact in FP32, 1 in TF32.
  const Geometry g{1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_TENSOR_NCHW};
  const float x = emu_test::with_bits(0x3f800800u);
  for (cudnnMathType_t math : {CUDNN_FMA_MATH, CUDNN_DEFAULT_MATH}) {
    Handle h;
    Descriptors d(g, math);
    DeviceFloats dx(std::vector<float>{x}), dw(std::vector<float>{1.f}), dy(1);
    ASSERT_EQ(launch(h.h, d, Op::Forward, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, dx.get(), dw.get(),
                     dy.get(), nullptr, 0, 1.f, 0.f),
              CUDNN_STATUS_SUCCESS);
    EXPECT_EQ(dy.download()[0], math == CUDNN_FMA_MATH ? x : 1.f) << "math " << math;
  }
}

TEST(CudnnFake, WorkspaceIsPoisonedAndTooSmallOneRefused) {
  const Geometry& g = kGeometries[0];
  Handle h;
  Descriptors d(g, CUDNN_FMA_MATH);
  size_t needed = 0;
  ASSERT_EQ(cudnnGetConvolutionForwardWorkspaceSize(h.h, d.x, d.w, d.conv, d.y,
                                                    CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, &needed),
            CUDNN_STATUS_SUCCESS);
  ASSERT_GT(needed, 0u);
  const size_t given = needed + 64;
  DeviceFloats x(emu_test::random_floats(g.x_size(), 1)), w(emu_test::random_floats(g.w_size(), 2));
  const auto prior = emu_test::random_floats(g.y_size(), 3);
  DeviceFloats y(prior), ws(given / sizeof(float));
  ASSERT_EQ(cudaMemset(ws.get(), 0, ws.bytes()), cudaSuccess);

  // One byte short: refused, nothing runs, the reason is retrievable.
  EXPECT_EQ(launch(h.h, d, Op::Forward, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, x.get(),
                   w.get(), y.get(), ws.get(), needed - 1, 1.f, 0.f),
            CUDNN_STATUS_BAD_PARAM);
  char message[256] = {0};
  cudnnGetLastErrorString(message, sizeof message);
  EXPECT_NE(std::string(message).find("workspace"), std::string::npos) << message;
  EXPECT_EQ(y.download(), prior);
  EXPECT_EQ(launch(h.h, d, Op::Forward, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, x.get(),
                   w.get(), y.get(), nullptr, needed, 1.f, 0.f),
            CUDNN_STATUS_BAD_PARAM);

  // Enough: runs, and leaves its scratch as garbage (NaN bytes), all that it was given.
  EXPECT_EQ(launch(h.h, d, Op::Forward, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, x.get(),
                   w.get(), y.get(), ws.get(), given, 1.f, 0.f),
            CUDNN_STATUS_SUCCESS);
  const auto scratch = ws.download();
  for (size_t i = 0; i < scratch.size(); ++i) {
    uint32_t bits;
    std::memcpy(&bits, &scratch[i], sizeof bits);
    ASSERT_EQ(bits, 0xffffffffu) << "workspace word " << i;
  }
}

TEST(CudnnFake, BackwardOpsRefuseSmallWorkspaces) {
  const Geometry& g = kGeometries[1];
  Handle h;
  Descriptors d(g, CUDNN_FMA_MATH);
  size_t data_bytes = 0, filter_bytes = 0;
  ASSERT_EQ(cudnnGetConvolutionBackwardDataWorkspaceSize(h.h, d.w, d.y, d.conv, d.x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, &data_bytes), CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnGetConvolutionBackwardFilterWorkspaceSize(h.h, d.x, d.y, d.conv, d.w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, &filter_bytes), CUDNN_STATUS_SUCCESS);
  ASSERT_GT(data_bytes, 0u);
  ASSERT_GT(filter_bytes, 0u);
  DeviceFloats x(g.x_size()), w(g.w_size()), y(g.y_size()), ws((data_bytes + filter_bytes) / 4 + 1);
  EXPECT_EQ(launch(h.h, d, Op::BackwardData, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, w.get(), y.get(), x.get(), ws.get(), data_bytes - 4, 1.f, 0.f),
            CUDNN_STATUS_BAD_PARAM);
  EXPECT_EQ(launch(h.h, d, Op::BackwardFilter, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, x.get(), y.get(), w.get(), ws.get(), filter_bytes - 4, 1.f, 0.f),
            CUDNN_STATUS_BAD_PARAM);
}

TEST(CudnnFake, UnsupportedAlgorithmsAreReportedAndRefused) {
  Handle h;
  {  // stride 2 NHWC: no FFT, Winograd or explicit GEMM; DIRECT never
    const Geometry& g = kGeometries[0];
    Descriptors d(g, CUDNN_FMA_MATH);
    size_t bytes = 0;
    for (cudnnConvolutionFwdAlgo_t algo : {CUDNN_CONVOLUTION_FWD_ALGO_FFT, CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING,
                                           CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD, CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED,
                                           CUDNN_CONVOLUTION_FWD_ALGO_DIRECT})
      EXPECT_EQ(cudnnGetConvolutionForwardWorkspaceSize(h.h, d.x, d.w, d.conv, d.y, algo, &bytes),
                CUDNN_STATUS_NOT_SUPPORTED) << algo;
    EXPECT_EQ(cudnnGetConvolutionBackwardFilterWorkspaceSize(h.h, d.x, d.y, d.conv, d.w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT, &bytes),
              CUDNN_STATUS_NOT_SUPPORTED);
    DeviceFloats x(g.x_size()), w(g.w_size()), y(g.y_size()), ws(1 << 20);
    EXPECT_EQ(launch(h.h, d, Op::Forward, CUDNN_CONVOLUTION_FWD_ALGO_FFT, x.get(), w.get(), y.get(), ws.get(), ws.bytes(), 1.f, 0.f),
              CUDNN_STATUS_NOT_SUPPORTED);
  }
  {  // NCHW 3x3 stride 1: the Winograd and FFT paths exist
    const Geometry& g = kGeometries[5];
    Descriptors d(g, CUDNN_FMA_MATH);
    size_t bytes = 0;
    EXPECT_EQ(cudnnGetConvolutionForwardWorkspaceSize(h.h, d.x, d.w, d.conv, d.y, CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD, &bytes), CUDNN_STATUS_SUCCESS);
    EXPECT_EQ(cudnnGetConvolutionForwardWorkspaceSize(h.h, d.x, d.w, d.conv, d.y, CUDNN_CONVOLUTION_FWD_ALGO_FFT, &bytes), CUDNN_STATUS_SUCCESS);
    EXPECT_GT(bytes, 0u);
    EXPECT_EQ(cudnnGetConvolutionBackwardFilterWorkspaceSize(h.h, d.x, d.y, d.conv, d.w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD, &bytes),
              CUDNN_STATUS_NOT_SUPPORTED);
  }
}

TEST(CudnnFake, HeuristicsListEveryAlgorithmWithItsProperties) {
  Handle h;
  const Geometry& g = kGeometries[0];
  for (cudnnMathType_t math : {CUDNN_FMA_MATH, CUDNN_DEFAULT_MATH}) {
    Descriptors d(g, math);
    int max_count = 0, count = 0;
    ASSERT_EQ(cudnnGetConvolutionForwardAlgorithmMaxCount(h.h, &max_count), CUDNN_STATUS_SUCCESS);
    std::vector<cudnnConvolutionFwdAlgoPerf_t> fwd(static_cast<size_t>(max_count));
    ASSERT_EQ(cudnnGetConvolutionForwardAlgorithm_v7(h.h, d.x, d.w, d.conv, d.y, max_count, &count, fwd.data()), CUDNN_STATUS_SUCCESS);
    EXPECT_EQ(count, max_count);
    bool seen_unsupported = false, all_fma = true;
    for (int i = 0; i < count; ++i) {
      const auto& p = fwd[size_t(i)];
      if (p.status != CUDNN_STATUS_SUCCESS) {
        seen_unsupported = true;
        continue;
      }
      EXPECT_FALSE(seen_unsupported) << "supported algorithms come first";
      EXPECT_EQ(p.determinism, CUDNN_DETERMINISTIC);
      size_t bytes = 0;
      EXPECT_EQ(cudnnGetConvolutionForwardWorkspaceSize(h.h, d.x, d.w, d.conv, d.y, p.algo, &bytes), CUDNN_STATUS_SUCCESS);
      EXPECT_EQ(p.memory, bytes);
      all_fma = all_fma && p.mathType == CUDNN_FMA_MATH;
    }
    // Float data: the results do not report FMA_MATH even when the descriptor asks for it.
    EXPECT_FALSE(all_fma) << "math " << math;

    // Fewer requested, fewer returned.
    ASSERT_EQ(cudnnGetConvolutionForwardAlgorithm_v7(h.h, d.x, d.w, d.conv, d.y, 2, &count, fwd.data()), CUDNN_STATUS_SUCCESS);
    EXPECT_EQ(count, 2);

    cudnnConvolutionBwdDataAlgoPerf_t data[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    ASSERT_EQ(cudnnGetConvolutionBackwardDataAlgorithm_v7(h.h, d.w, d.y, d.conv, d.x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &count, data), CUDNN_STATUS_SUCCESS);
    for (int i = 0; i < count; ++i)
      if (data[i].algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0) EXPECT_EQ(data[i].determinism, CUDNN_NON_DETERMINISTIC);
      else if (data[i].algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_1) EXPECT_EQ(data[i].determinism, CUDNN_DETERMINISTIC);
    cudnnConvolutionBwdFilterAlgoPerf_t filter[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    ASSERT_EQ(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h.h, d.x, d.y, d.conv, d.w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &count, filter), CUDNN_STATUS_SUCCESS);
    for (int i = 0; i < count; ++i) {
      const auto a = filter[i].algo;
      if (a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 || a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3)
        EXPECT_EQ(filter[i].determinism, CUDNN_NON_DETERMINISTIC);
      else if (a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1)
        EXPECT_EQ(filter[i].determinism, CUDNN_DETERMINISTIC);
    }
  }
}

TEST(CudnnFake, DescriptorsAndShapesAreValidated) {
  Handle h;
  const Geometry& g = kGeometries[1];
  Descriptors d(g, CUDNN_FMA_MATH);
  int n = 0, c = 0, oh = 0, ow = 0;
  ASSERT_EQ(cudnnGetConvolution2dForwardOutputDim(d.conv, d.x, d.w, &n, &c, &oh, &ow), CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(n, g.n);
  EXPECT_EQ(c, g.k);
  EXPECT_EQ(oh, g.oh());
  EXPECT_EQ(ow, g.ow());

  cudnnTensorDescriptor_t t = nullptr;
  ASSERT_EQ(cudnnCreateTensorDescriptor(&t), CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(cudnnSetTensor4dDescriptor(t, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, 1, -2, 3, 3), CUDNN_STATUS_BAD_PARAM);
  char message[256] = {0};
  cudnnGetLastErrorString(message, sizeof message);
  EXPECT_STRNE(message, "");
  // A y descriptor of the wrong shape is refused by the ops.
  ASSERT_EQ(cudnnSetTensor4dDescriptor(t, g.format, CUDNN_DATA_FLOAT, g.n, g.k, g.oh() + 1, g.ow()), CUDNN_STATUS_SUCCESS);
  size_t bytes = 0;
  EXPECT_EQ(cudnnGetConvolutionForwardWorkspaceSize(h.h, d.x, d.w, d.conv, t, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, &bytes), CUDNN_STATUS_BAD_PARAM);
  EXPECT_EQ(cudnnDestroyTensorDescriptor(t), CUDNN_STATUS_SUCCESS);

  EXPECT_EQ(cudnnSetConvolutionMathType(d.conv, cudnnMathType_t(17)), CUDNN_STATUS_BAD_PARAM);
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  EXPECT_EQ(cudnnGetConvolutionMathType(d.conv, &math), CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(math, CUDNN_FMA_MATH);
  EXPECT_EQ(cudnnSetConvolution2dDescriptor(d.conv, 0, 0, 0, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT), CUDNN_STATUS_BAD_PARAM);
  // A filter larger than the padded input has no output.
  ASSERT_EQ(cudnnSetConvolution2dDescriptor(d.conv, 0, 0, 1, 1, 3, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT), CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(cudnnGetConvolution2dForwardOutputDim(d.conv, d.x, d.w, &n, &c, &oh, &ow), CUDNN_STATUS_BAD_PARAM);

  EXPECT_STREQ(cudnnGetErrorString(CUDNN_STATUS_BAD_PARAM), "CUDNN_STATUS_BAD_PARAM");
  EXPECT_STREQ(cudnnGetErrorString(CUDNN_STATUS_NOT_SUPPORTED), "CUDNN_STATUS_NOT_SUPPORTED");
  EXPECT_EQ(cudnnGetVersion(), size_t(CUDNN_VERSION));

  cudaStream_t s = nullptr, got = nullptr;
  ASSERT_EQ(cudaStreamCreate(&s), cudaSuccess);
  EXPECT_EQ(cudnnSetStream(h.h, s), CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(cudnnGetStream(h.h, &got), CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(got, s);
  EXPECT_EQ(cudnnSetStream(h.h, nullptr), CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(cudaStreamDestroy(s), cudaSuccess);
}

TEST(CudnnFake, TensorsOutsideDeviceMemoryFault) {
  {
    const Geometry& g = kGeometries[0];
    Handle h;
    Descriptors d(g, CUDNN_FMA_MATH);
    DeviceFloats x(g.x_size()), w(g.w_size() - 1), y(g.y_size());  // w one float short
    EXPECT_EQ(launch(h.h, d, Op::Forward, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, x.get(), w.get(),
                     y.get(), nullptr, 0, 1.f, 0.f),
              CUDNN_STATUS_EXECUTION_FAILED);
    EXPECT_NE(bp_emu::last_error_message().find("cudnnConvolutionForward"), std::string::npos)
        << bp_emu::last_error_message();
  }
  bp_emu::reset_device();
}
