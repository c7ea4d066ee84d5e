#include "cudnn_conv.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "cuda_check.h"
#include "cuda/kernel_launch.cuh"

namespace bp::cuda {
namespace {

// The cuDNN scratch is followed by the padded tensor at this alignment.
constexpr size_t kScratchAlign = 256;

size_t align_up(size_t bytes) { return (bytes + kScratchAlign - 1) / kScratchAlign * kScratchAlign; }

std::string describe(const Conv2dGeometry& g) {
  std::ostringstream out;
  out << "batch " << g.batch << ", input " << g.in_h << "x" << g.in_w << "x" << g.in_c
      << ", output " << g.out_h << "x" << g.out_w << "x" << g.out_c << ", kernel " << g.kernel_h
      << "x" << g.kernel_w << ", stride " << g.stride_h << "x" << g.stride_w << ", padding top "
      << g.pad_top << " left " << g.pad_left;
  return out.str();
}

// Rows (or columns) of zeros to append after the input so that cuDNN, padding `pad` on both
// sides, produces exactly `out` outputs whose windows start where TF's do (o * stride - pad).
// TF reads input indices up to (out - 1) * stride - pad + kernel - 1; cuDNN's symmetric padding
// covers up to in - 1 + pad. When TF reaches further (the odd pixel of 'same' padding at the
// bottom/right), the difference is appended as explicit zeros. Returns -1 when symmetric
// padding yields more outputs than `out`, which no TF geometry does.
int extra_after(int in, int kernel, int stride, int pad, int out) {
  const int needed = (out - 1) * stride + kernel - 2 * pad;  // padded-free extent TF's windows span
  const int extra = std::max(0, needed - in);
  const int cudnn_out = (in + extra + 2 * pad - kernel) / stride + 1;
  return cudnn_out == out ? extra : -1;
}

template <typename Algo>
struct Candidate {
  Algo algo;
  cudnnMathType_t math;
  bool deterministic;
  int heuristic_rank;  // its place in cuDNN's heuristics, -1 for a fallback
};

template <typename Algo>
struct Choice {
  Algo algo{};
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  size_t bytes = 0;
  int heuristic_rank = -1;
};

// Which heuristic results a math mode can use. FP32 must match the CPU reference: FMA kernels
// only. cuDNN's v7 heuristics report CUDNN_DEFAULT_MATH for float results (DEFAULT permits
// TF32 tensor cores on Ampere and newer), so those are kept and run with CUDNN_FMA_MATH forced
// on the descriptor, their workspace queried again under it (an algorithm without an FMA
// kernel fails that query and is passed over); results that need tensor-op math are dropped.
// TF32 takes whatever cuDNN offers except down-conversion to FP16.
bool math_allowed(cudnnMathType_t type, MathMode mode) {
  if (mode == MathMode::FP32) return type == CUDNN_FMA_MATH || type == CUDNN_DEFAULT_MATH;
  return type != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
}
cudnnMathType_t math_to_run(cudnnMathType_t reported, MathMode mode) {
  return mode == MathMode::FP32 ? CUDNN_FMA_MATH : reported;
}

cudnnMathType_t base_math(MathMode mode) {
  return mode == MathMode::FP32 ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH;
}

// The first candidate that is supported (its workspace query succeeds with the candidate's math
// type set on `conv`) and fits kMaxWorkspaceBytes; deterministic ones first when asked. Leaves
// the chosen math type set on `conv`. `workspace(algo, &bytes)` queries cuDNN.
template <typename Algo, typename WorkspaceQuery>
Choice<Algo> choose(const char* op, const Conv2dGeometry& g,
                    const std::vector<Candidate<Algo>>& candidates, bool prefer_deterministic,
                    cudnnConvolutionDescriptor_t conv, WorkspaceQuery&& workspace) {
  std::ostringstream tried;
  for (int pass = prefer_deterministic ? 0 : 1; pass < 2; ++pass) {
    for (const Candidate<Algo>& c : candidates) {
      if (pass == 0 && !c.deterministic) continue;
      BP_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, c.math));
      size_t bytes = 0;
      const cudnnStatus_t status = workspace(c.algo, &bytes);
      if (pass == 1) {  // every candidate comes up once in the last pass
        tried << " algo " << int(c.algo) << " math " << int(c.math) << ": "
              << (status != CUDNN_STATUS_SUCCESS ? cudnnGetErrorString(status)
                                                 : std::to_string(bytes) + " bytes")
              << ";";
      }
      if (status != CUDNN_STATUS_SUCCESS || bytes > CudnnConvolutions::kMaxWorkspaceBytes) continue;
      Choice<Algo> choice;
      choice.algo = c.algo;
      choice.math = c.math;
      choice.bytes = bytes;
      choice.heuristic_rank = c.heuristic_rank;
      if (std::getenv("BRAINPROP_CUDNN_VERBOSE"))
        std::fprintf(stderr, "brainprop: cuDNN %s (%s): algorithm %d, math type %d, %zu bytes of "
                             "workspace, %s\n",
                     op, describe(g).c_str(), int(c.algo), int(c.math), bytes,
                     c.heuristic_rank >= 0
                         ? ("heuristic result " + std::to_string(c.heuristic_rank)).c_str()
                         : "fallback (no heuristic result was usable)");
      return choice;
    }
  }
  BP_FAIL("cuDNN has no " << op << " algorithm for the convolution (" << describe(g)
                          << ") within " << (CudnnConvolutions::kMaxWorkspaceBytes >> 20)
                          << " MiB of workspace; tried" << tried.str());
}

// Heuristic results that cuDNN supports with the requested math, in its order of preference,
// followed by the algorithms that run on (nearly) any geometry as a fallback.
template <typename Algo, typename Perf>
std::vector<Candidate<Algo>> candidates_from(const Perf* perfs, int count, MathMode mode,
                                             std::initializer_list<std::pair<Algo, bool>> fallbacks) {
  std::vector<Candidate<Algo>> out;
  for (int i = 0; i < count; ++i) {
    const Perf& p = perfs[i];
    if (p.status != CUDNN_STATUS_SUCCESS || !math_allowed(p.mathType, mode)) continue;
    out.push_back({p.algo, math_to_run(p.mathType, mode), p.determinism == CUDNN_DETERMINISTIC, i});
  }
  for (const auto& [algo, deterministic] : fallbacks)
    out.push_back({algo, base_math(mode), deterministic, -1});
  return out;
}

// xp[n, h, w, c] = x[n, h, w, c] inside the input, 0 in the rows/columns appended below/right.
// One padded row (w, c contiguous) per loop iteration: its valid part is a prefix of w * c.
__global__ void pad_after_kernel(const float* __restrict__ x, float* __restrict__ xp, int rows,
                                 int padded_h, int in_h, int row_len, int padded_row_len) {
  for (int row = blockIdx.x; row < rows; row += gridDim.x) {
    const int n = row / padded_h, h = row - n * padded_h;
    const int valid = h < in_h ? row_len : 0;
    const float* in = x + (int64_t(n) * in_h + h) * row_len;
    float* out = xp + int64_t(row) * padded_row_len;
    for (int j = threadIdx.x; j < padded_row_len; j += blockDim.x) out[j] = j < valid ? in[j] : 0.f;
  }
}

// dx[n, h, w, c] = dxp[n, h, w, c] for the pixels of the unpadded input.
__global__ void crop_kernel(const float* __restrict__ dxp, float* __restrict__ dx, int rows,
                            int padded_h, int in_h, int row_len, int padded_row_len) {
  for (int row = blockIdx.x; row < rows; row += gridDim.x) {
    const int n = row / in_h, h = row - n * in_h;
    const float* in = dxp + (int64_t(n) * padded_h + h) * padded_row_len;
    float* out = dx + int64_t(row) * row_len;
    for (int j = threadIdx.x; j < row_len; j += blockDim.x) out[j] = in[j];
  }
}

constexpr int kCopyThreads = 256;

unsigned copy_blocks(int rows, int sm_count) {
  return static_cast<unsigned>(std::max(1, std::min(rows, std::max(sm_count, 1) * 32)));
}

}  // namespace

struct CudnnConvolutions::Plan {
  Conv2dGeometry g;
  int extra_h = 0, extra_w = 0;  // zero rows/columns appended below/right of x for cuDNN
  int padded_h = 0, padded_w = 0;
  size_t padded_bytes = 0;  // the padded copy of x (or dx); 0 when cuDNN runs on x directly

  cudnnTensorDescriptor_t x_desc = nullptr;  // x as cuDNN sees it (padded_h x padded_w)
  cudnnTensorDescriptor_t y_desc = nullptr;
  cudnnFilterDescriptor_t w_desc = nullptr;
  // One convolution descriptor per op: each carries the math type of its chosen algorithm.
  cudnnConvolutionDescriptor_t fwd_conv = nullptr, data_conv = nullptr, filter_conv = nullptr;

  cudnnConvolutionFwdAlgo_t fwd_algo{};
  cudnnConvolutionBwdDataAlgo_t data_algo{};
  cudnnConvolutionBwdFilterAlgo_t filter_algo{};
  size_t fwd_bytes = 0, data_bytes = 0, filter_bytes = 0;

  bool padded() const { return padded_bytes != 0; }

  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {
    // Destruction cannot throw; a failing destroy only leaks a host-side descriptor.
    if (fwd_conv) cudnnDestroyConvolutionDescriptor(fwd_conv);
    if (data_conv) cudnnDestroyConvolutionDescriptor(data_conv);
    if (filter_conv) cudnnDestroyConvolutionDescriptor(filter_conv);
    if (w_desc) cudnnDestroyFilterDescriptor(w_desc);
    if (y_desc) cudnnDestroyTensorDescriptor(y_desc);
    if (x_desc) cudnnDestroyTensorDescriptor(x_desc);
  }
};

CudnnConvolutions::CudnnConvolutions(DeviceContext& ctx) : ctx_(ctx) {}

CudnnConvolutions::~CudnnConvolutions() = default;

CudnnConvolutions::Plan& CudnnConvolutions::plan_for(const Conv2dGeometry& g) {
  const Key key{g.batch,    g.in_h,     g.in_w,     g.in_c,     g.out_h,
                g.out_w,    g.out_c,    g.kernel_h, g.kernel_w, g.stride_h,
                g.stride_w, g.pad_top,  g.pad_left};
  const auto found = plans_.find(key);
  if (found != plans_.end()) return *found->second;

  BP_CHECK(!ctx_.capturing(), "no cuDNN plan for the convolution (" << describe(g)
                                  << ") during graph capture; run the step once first");
  BP_CHECK(g.batch > 0 && g.in_h > 0 && g.in_w > 0 && g.in_c > 0 && g.out_h > 0 && g.out_w > 0 &&
               g.out_c > 0 && g.kernel_h > 0 && g.kernel_w > 0 && g.stride_h > 0 &&
               g.stride_w > 0 && g.pad_top >= 0 && g.pad_left >= 0,
           "cuDNN convolution with an empty or invalid geometry (" << describe(g) << ")");

  auto plan = std::make_unique<Plan>();
  Plan& p = *plan;
  p.g = g;
  p.extra_h = extra_after(g.in_h, g.kernel_h, g.stride_h, g.pad_top, g.out_h);
  p.extra_w = extra_after(g.in_w, g.kernel_w, g.stride_w, g.pad_left, g.out_w);
  BP_CHECK(p.extra_h >= 0 && p.extra_w >= 0,
           "convolution geometry that cuDNN cannot express (" << describe(g)
               << "): symmetric padding gives more outputs than the geometry has");
  p.padded_h = g.in_h + p.extra_h;
  p.padded_w = g.in_w + p.extra_w;
  const int64_t x_elems = int64_t(g.batch) * p.padded_h * p.padded_w * g.in_c;
  const int64_t y_elems = int64_t(g.batch) * g.out_h * g.out_w * g.out_c;
  BP_CHECK(x_elems <= INT_MAX && y_elems <= INT_MAX,
           "convolution too large for cuDNN's 32-bit indexing (" << describe(g)
               << "): use a smaller batch");
  if (p.extra_h > 0 || p.extra_w > 0) p.padded_bytes = size_t(x_elems) * sizeof(float);

  cudnnHandle_t handle = ctx_.cudnn();
  BP_CUDNN_CHECK(cudnnSetStream(handle, ctx_.stream()));

  BP_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.x_desc));
  BP_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p.x_desc, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, g.batch,
                                            g.in_c, p.padded_h, p.padded_w));
  BP_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.y_desc));
  BP_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p.y_desc, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, g.batch,
                                            g.out_c, g.out_h, g.out_w));
  BP_CUDNN_CHECK(cudnnCreateFilterDescriptor(&p.w_desc));
  BP_CUDNN_CHECK(cudnnSetFilter4dDescriptor(p.w_desc, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, g.out_c,
                                            g.in_c, g.kernel_h, g.kernel_w));
  const MathMode mode = ctx_.math();
  for (cudnnConvolutionDescriptor_t* conv : {&p.fwd_conv, &p.data_conv, &p.filter_conv}) {
    BP_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(conv));
    BP_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(*conv, g.pad_top, g.pad_left, g.stride_h,
                                                   g.stride_w, 1, 1, CUDNN_CROSS_CORRELATION,
                                                   CUDNN_DATA_FLOAT));
    // The heuristics below report algorithms for the math type set here.
    BP_CUDNN_CHECK(cudnnSetConvolutionMathType(*conv, base_math(mode)));
  }

  // cuDNN must agree on the output shape, or the descriptors above are inconsistent.
  int n = 0, c = 0, h = 0, w = 0;
  BP_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(p.fwd_conv, p.x_desc, p.w_desc, &n, &c, &h, &w));
  BP_CHECK(n == g.batch && c == g.out_c && h == g.out_h && w == g.out_w,
           "cuDNN computes a " << n << "x" << h << "x" << w << "x" << c << " output for the convolution ("
                               << describe(g) << ")");

  {  // forward: every algorithm is deterministic
    int max_count = 0;
    BP_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(handle, &max_count));
    std::vector<cudnnConvolutionFwdAlgoPerf_t> perfs(std::max(max_count, 1));
    int count = 0;
    BP_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(handle, p.x_desc, p.w_desc, p.fwd_conv,
                                                          p.y_desc, int(perfs.size()), &count,
                                                          perfs.data()));
    const auto candidates = candidates_from<cudnnConvolutionFwdAlgo_t>(
        perfs.data(), count, mode,
        {{CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, true},
         {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, true},
         {CUDNN_CONVOLUTION_FWD_ALGO_GEMM, true}});
    const auto choice = choose("forward", g, candidates, false, p.fwd_conv,
                               [&](cudnnConvolutionFwdAlgo_t algo, size_t* bytes) {
                                 return cudnnGetConvolutionForwardWorkspaceSize(
                                     handle, p.x_desc, p.w_desc, p.fwd_conv, p.y_desc, algo, bytes);
                               });
    p.fwd_algo = choice.algo;
    p.fwd_bytes = choice.bytes;
  }
  {  // backward data
    int max_count = 0;
    BP_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(handle, &max_count));
    std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perfs(std::max(max_count, 1));
    int count = 0;
    BP_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(handle, p.w_desc, p.y_desc,
                                                               p.data_conv, p.x_desc,
                                                               int(perfs.size()), &count,
                                                               perfs.data()));
    const auto candidates = candidates_from<cudnnConvolutionBwdDataAlgo_t>(
        perfs.data(), count, mode,
        {{CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, true}, {CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, false}});
    const auto choice = choose("backward-data", g, candidates, true, p.data_conv,
                               [&](cudnnConvolutionBwdDataAlgo_t algo, size_t* bytes) {
                                 return cudnnGetConvolutionBackwardDataWorkspaceSize(
                                     handle, p.w_desc, p.y_desc, p.data_conv, p.x_desc, algo, bytes);
                               });
    p.data_algo = choice.algo;
    p.data_bytes = choice.bytes;
  }
  {  // backward filter (the update)
    int max_count = 0;
    BP_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(handle, &max_count));
    std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perfs(std::max(max_count, 1));
    int count = 0;
    BP_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(handle, p.x_desc, p.y_desc,
                                                                 p.filter_conv, p.w_desc,
                                                                 int(perfs.size()), &count,
                                                                 perfs.data()));
    const auto candidates = candidates_from<cudnnConvolutionBwdFilterAlgo_t>(
        perfs.data(), count, mode,
        {{CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, true},
         {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0, false},
         {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3, false}});
    const auto choice = choose("backward-filter", g, candidates, true, p.filter_conv,
                               [&](cudnnConvolutionBwdFilterAlgo_t algo, size_t* bytes) {
                                 return cudnnGetConvolutionBackwardFilterWorkspaceSize(
                                     handle, p.x_desc, p.y_desc, p.filter_conv, p.w_desc, algo,
                                     bytes);
                               });
    p.filter_algo = choice.algo;
    p.filter_bytes = choice.bytes;
  }

  // Grow the workspace now, outside any capture, to what the largest of the three ops needs.
  const size_t largest = std::max({p.fwd_bytes, p.data_bytes, p.filter_bytes});
  if (largest > 0 || p.padded()) ctx_.workspace(align_up(largest) + p.padded_bytes);

  Plan& result = *plan;
  plans_.emplace(key, std::move(plan));
  return result;
}

void* CudnnConvolutions::scratch(const Plan& plan, size_t cudnn_bytes, float** padded) {
  *padded = nullptr;
  if (cudnn_bytes == 0 && !plan.padded()) return nullptr;
  const size_t offset = align_up(cudnn_bytes);
  char* base = static_cast<char*>(ctx_.workspace(offset + plan.padded_bytes));
  if (plan.padded()) *padded = reinterpret_cast<float*>(base + offset);
  return cudnn_bytes > 0 ? base : nullptr;
}

void CudnnConvolutions::pad_input(const Plan& plan, const float* x, float* padded) {
  const Conv2dGeometry& g = plan.g;
  const int rows = g.batch * plan.padded_h;
  BP_LAUNCH(pad_after_kernel, copy_blocks(rows, ctx_.sm_count()), kCopyThreads, 0, ctx_.stream(), 
      x, padded, rows, plan.padded_h, g.in_h, g.in_w * g.in_c, plan.padded_w * g.in_c);
  BP_CUDA_CHECK_LAUNCH(pad_after_kernel);
}

void CudnnConvolutions::forward(const float* x, const float* w, float* y, const Conv2dGeometry& g) {
  Plan& p = plan_for(g);
  cudnnHandle_t handle = ctx_.cudnn();
  BP_CUDNN_CHECK(cudnnSetStream(handle, ctx_.stream()));
  float* padded = nullptr;
  void* work = scratch(p, p.fwd_bytes, &padded);
  if (padded) {
    pad_input(p, x, padded);
    x = padded;
  }
  const float alpha = 1.f, beta = 0.f;
  BP_CUDNN_CHECK(cudnnConvolutionForward(handle, &alpha, p.x_desc, x, p.w_desc, w, p.fwd_conv,
                                         p.fwd_algo, work, p.fwd_bytes, &beta, p.y_desc, y));
}

void CudnnConvolutions::backward_data(const float* dy, const float* w, float* dx,
                                      const Conv2dGeometry& g) {
  Plan& p = plan_for(g);
  cudnnHandle_t handle = ctx_.cudnn();
  BP_CUDNN_CHECK(cudnnSetStream(handle, ctx_.stream()));
  float* padded = nullptr;
  void* work = scratch(p, p.data_bytes, &padded);
  // With padding, cuDNN writes the gradient of the padded input; its real part is then cropped
  // into dx (the appended zeros are constants: their gradient is dropped).
  const float alpha = 1.f, beta = 0.f;
  BP_CUDNN_CHECK(cudnnConvolutionBackwardData(handle, &alpha, p.w_desc, w, p.y_desc, dy,
                                              p.data_conv, p.data_algo, work, p.data_bytes, &beta,
                                              p.x_desc, padded ? padded : dx));
  if (padded) {
    const int rows = g.batch * g.in_h;
    BP_LAUNCH(crop_kernel, copy_blocks(rows, ctx_.sm_count()), kCopyThreads, 0, ctx_.stream(), 
        padded, dx, rows, p.padded_h, g.in_h, g.in_w * g.in_c, p.padded_w * g.in_c);
    BP_CUDA_CHECK_LAUNCH(crop_kernel);
  }
}

void CudnnConvolutions::update(float* w, const float* dy, const float* x, const Conv2dGeometry& g,
                               float decay, float step) {
  Plan& p = plan_for(g);
  cudnnHandle_t handle = ctx_.cudnn();
  BP_CUDNN_CHECK(cudnnSetStream(handle, ctx_.stream()));
  float* padded = nullptr;
  void* work = scratch(p, p.filter_bytes, &padded);
  if (padded) {
    pad_input(p, x, padded);
    x = padded;
  }
  // w = decay * w - step * dL/dw: backward filter blends its result into w (beta = decay).
  const float alpha = -step, beta = decay;
  BP_CUDNN_CHECK(cudnnConvolutionBackwardFilter(handle, &alpha, p.x_desc, x, p.y_desc, dy,
                                                p.filter_conv, p.filter_algo, work, p.filter_bytes,
                                                &beta, p.w_desc, w));
}

}  // namespace bp::cuda
