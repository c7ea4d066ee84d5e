// The emulator's cuBLAS: handles, streams, workspace, math modes and SGEMM, written from
// NVIDIA's API reference and cublas_api.h (not from the project's calls), so that a fake cannot
// share a misunderstanding with the code it tests.
//
// SGEMM is column-major C = alpha * op(A) op(B) + beta * C with host-side alpha/beta
// (CUBLAS_POINTER_MODE_HOST, the default). Arguments are validated as the reference states;
// the operands are range-checked against the device heap at call time and the product runs in
// stream order (bp_emu::enqueue). C is not read when beta == 0, A and B are not read when
// alpha == 0 or k == 0. Each output element is accumulated in float over all of k, as the
// GPU's FMA pipelines do. In CUBLAS_TF32_TENSOR_OP_MATH the inputs are first rounded to TF32
// (nearest, ties away: a 10-bit mantissa); the deprecated CUBLAS_TENSOR_OP_MATH computes SGEMM
// with inputs rounded to FP16 (CUBLAS_COMPUTE_32F_FAST_16F); NVIDIA_TF32_OVERRIDE=0 turns TF32
// off as it does on a real GPU.
#include <cublas_v2.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "runtime.h"

struct cublasContext {
  cudaStream_t stream = nullptr;  // the legacy default stream until cublasSetStream
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  cublasMath_t math = CUBLAS_DEFAULT_MATH;
};

namespace {

// How op(A)/op(B) are rounded before the multiply.
enum class InputRounding { None, TF32, FP16 };

bool tf32_disabled_by_environment() {
  const char* v = std::getenv("NVIDIA_TF32_OVERRIDE");
  return v && std::strcmp(v, "0") == 0;
}

InputRounding rounding_for(cublasMath_t math) {
  switch (static_cast<int>(math) & 0xf) {  // the high bits are flags (e.g. no reduced-precision reduction)
    case CUBLAS_TF32_TENSOR_OP_MATH:
      return tf32_disabled_by_environment() ? InputRounding::None : InputRounding::TF32;
    case CUBLAS_TENSOR_OP_MATH: return InputRounding::FP16;
    default: return InputRounding::None;
  }
}

// Nearest TF32 value (8-bit exponent, 10-bit mantissa), ties away from zero.
inline float round_to_tf32(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  if ((bits & 0x7f800000u) == 0x7f800000u) return x;  // inf and NaN pass through
  bits = (bits + 0x1000u) & ~0x1fffu;
  std::memcpy(&x, &bits, sizeof bits);
  return x;
}

// Nearest FP16 value (ties to even), as a float: overflow to inf, subnormals below 2^-14.
inline float round_to_fp16(float x) {
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

inline float round_input(float x, InputRounding r) {
  switch (r) {
    case InputRounding::TF32: return round_to_tf32(x);
    case InputRounding::FP16: return round_to_fp16(x);
    default: return x;
  }
}

// --- the SGEMM kernel: packed panels and a register-blocked micro-kernel ---
constexpr int kMR = 16;  // rows of C per micro-tile (contiguous in column-major C: vector lanes)
constexpr int kNR = 6;   // columns of C per micro-tile
constexpr int kStripsPerBlock = 8;      // column strips per OpenMP work item (48 columns)
constexpr size_t kABlockBytes = 256 << 10;  // rows of packed A revisited while in L2

// acc[c][r] = sum_p a[p * kMR + r] * b[p * kNR + c], in float, in p order.
inline __attribute__((always_inline)) void micro_kernel_body(int k, const float* __restrict a,
                                                             const float* __restrict b,
                                                             float* __restrict out) {
  float acc[kNR][kMR] = {};
  for (int p = 0; p < k; ++p) {
    const float* ap = a + size_t(p) * kMR;
    const float* bp = b + size_t(p) * kNR;
    for (int c = 0; c < kNR; ++c) {
      const float bv = bp[c];
      for (int r = 0; r < kMR; ++r) acc[c][r] += ap[r] * bv;
    }
  }
  for (int c = 0; c < kNR; ++c)
    for (int r = 0; r < kMR; ++r) out[c * kMR + r] = acc[c][r];
}

// The same body compiled for AVX2+FMA (fused multiply-adds, as the GPU) and for the baseline.
// Not instrumented by the sanitizer builds: it reads only the packed copies this file made
// (the device operands were range-checked and read, instrumented, when packed), and
// instrumented it would make a sanitized training test run ten times longer.
BP_EMU_UNSANITIZED __attribute__((target("avx2,fma"))) void micro_kernel_avx2(int k, const float* a, const float* b,
                                                          float* out) {
  micro_kernel_body(k, a, b, out);
}
BP_EMU_UNSANITIZED void micro_kernel_generic(int k, const float* a, const float* b, float* out) {
  micro_kernel_body(k, a, b, out);
}

using MicroKernel = void (*)(int, const float*, const float*, float*);

MicroKernel pick_micro_kernel() {
  static const MicroKernel chosen =
      bp_emu::pick_by_cpu<MicroKernel>(micro_kernel_avx2, micro_kernel_generic);
  return chosen;
}

// Element (i, j) of op(X) for column-major X with leading dimension ld.
inline float op_element(const float* x, int ld, bool transposed, int i, int j) {
  return transposed ? x[size_t(i) * ld + j] : x[size_t(j) * ld + i];
}

struct GemmArgs {
  bool trans_a = false, trans_b = false;
  int m = 0, n = 0, k = 0;
  float alpha = 0.f, beta = 0.f;
  const float* A = nullptr;
  int lda = 0;
  const float* B = nullptr;
  int ldb = 0;
  float* C = nullptr;
  int ldc = 0;
  InputRounding rounding = InputRounding::None;
};

// C = beta * C (C = 0 when beta == 0, without reading it).
void scale_c(const GemmArgs& g) {
  for (int j = 0; j < g.n; ++j) {
    float* col = g.C + size_t(j) * g.ldc;
    if (g.beta == 0.f) {
      std::fill(col, col + g.m, 0.f);
    } else {
      for (int i = 0; i < g.m; ++i) col[i] *= g.beta;
    }
  }
}

void run_sgemm(const GemmArgs& g) {
  if (g.k == 0 || g.alpha == 0.f) {  // op(A) op(B) contributes nothing: A and B are not read
    scale_c(g);
    return;
  }
  const int m_strips = (g.m + kMR - 1) / kMR, n_strips = (g.n + kNR - 1) / kNR;
  const size_t k = size_t(g.k);
  // Packed op(A): strip s holds rows [s*kMR, s*kMR + kMR) as k consecutive groups of kMR
  // (zeros past m). Packed op(B): strip t holds columns [t*kNR, ...) as k groups of kNR.
  std::vector<float> a_pack(size_t(m_strips) * kMR * k), b_pack(size_t(n_strips) * kNR * k);
#pragma omp parallel for schedule(static)
  for (int s = 0; s < m_strips; ++s) {
    float* dst = a_pack.data() + size_t(s) * kMR * k;
    for (int p = 0; p < g.k; ++p)
      for (int r = 0; r < kMR; ++r) {
        const int i = s * kMR + r;
        dst[size_t(p) * kMR + r] =
            i < g.m ? round_input(op_element(g.A, g.lda, g.trans_a, i, p), g.rounding) : 0.f;
      }
  }
#pragma omp parallel for schedule(static)
  for (int t = 0; t < n_strips; ++t) {
    float* dst = b_pack.data() + size_t(t) * kNR * k;
    for (int p = 0; p < g.k; ++p)
      for (int c = 0; c < kNR; ++c) {
        const int j = t * kNR + c;
        dst[size_t(p) * kNR + c] =
            j < g.n ? round_input(op_element(g.B, g.ldb, g.trans_b, p, j), g.rounding) : 0.f;
      }
  }

  const MicroKernel kernel = pick_micro_kernel();
  // Row strips of A visited per pass, so that they stay in L2 across a block's column strips.
  const int strips_per_pass =
      std::max<int>(1, int(kABlockBytes / (size_t(kMR) * k * sizeof(float))));
  const int col_blocks = (n_strips + kStripsPerBlock - 1) / kStripsPerBlock;
#pragma omp parallel for schedule(dynamic, 1)
  for (int cb = 0; cb < col_blocks; ++cb) {
    float tile[kMR * kNR];
    const int t_end = std::min(n_strips, (cb + 1) * kStripsPerBlock);
    for (int s0 = 0; s0 < m_strips; s0 += strips_per_pass) {
      const int s_end = std::min(m_strips, s0 + strips_per_pass);
      for (int t = cb * kStripsPerBlock; t < t_end; ++t) {
        const float* b = b_pack.data() + size_t(t) * kNR * k;
        const int cols = std::min(kNR, g.n - t * kNR);
        for (int s = s0; s < s_end; ++s) {
          kernel(g.k, a_pack.data() + size_t(s) * kMR * k, b, tile);
          const int rows = std::min(kMR, g.m - s * kMR);
          for (int c = 0; c < cols; ++c) {
            float* out = g.C + size_t(t * kNR + c) * g.ldc + size_t(s) * kMR;
            const float* sum = tile + c * kMR;
            if (g.beta == 0.f) {
              for (int r = 0; r < rows; ++r) out[r] = g.alpha * sum[r];
            } else {
              for (int r = 0; r < rows; ++r) out[r] = g.alpha * sum[r] + g.beta * out[r];
            }
          }
        }
      }
    }
  }
}

bool valid_op(cublasOperation_t op) {
  return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C;
}

// Bytes spanned by a column-major rows x cols matrix with leading dimension ld.
size_t span_bytes(int rows, int cols, int ld) {
  if (rows == 0 || cols == 0) return 0;
  return (size_t(cols - 1) * size_t(ld) + size_t(rows)) * sizeof(float);
}

std::string describe(const char* name, int rows, int cols, int ld) {
  std::ostringstream out;
  out << name << ": " << rows << " x " << cols << ", ld " << ld;
  return out.str();
}

}  // namespace

extern "C" {

cublasStatus_t cublasCreate_v2(cublasHandle_t* handle) {
  if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
  *handle = new cublasContext();
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->stream = stream;
  // The reference: a new stream drops the user workspace (back to the default pool).
  handle->workspace = nullptr;
  handle->workspace_bytes = 0;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetStream_v2(cublasHandle_t handle, cudaStream_t* stream) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!stream) return CUBLAS_STATUS_INVALID_VALUE;
  *stream = handle->stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t handle, void* workspace, size_t bytes) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  // The workspace must be device memory aligned to at least 256 bytes.
  if (bytes > 0 && (!workspace || reinterpret_cast<uintptr_t>(workspace) % 256 != 0))
    return CUBLAS_STATUS_INVALID_VALUE;
  if (bytes > 0 && !bp_emu::check_device_range(workspace, bytes, "cublasSetWorkspace", "workspace"))
    return CUBLAS_STATUS_INVALID_VALUE;
  handle->workspace = bytes > 0 ? workspace : nullptr;
  handle->workspace_bytes = bytes;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  switch (static_cast<int>(mode) & ~int(CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)) {
    case CUBLAS_DEFAULT_MATH:
    case CUBLAS_TENSOR_OP_MATH:
    case CUBLAS_PEDANTIC_MATH:
    case CUBLAS_TF32_TENSOR_OP_MATH:
      handle->math = mode;
      return CUBLAS_STATUS_SUCCESS;
    default:  // the emulated BF16x9 / fixed-point modes are not emulated
      return CUBLAS_STATUS_INVALID_VALUE;
  }
}

cublasStatus_t cublasGetMathMode(cublasHandle_t handle, cublasMath_t* mode) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!mode) return CUBLAS_STATUS_INVALID_VALUE;
  *mode = handle->math;
  return CUBLAS_STATUS_SUCCESS;
}

const char* cublasGetStatusName(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}

const char* cublasGetStatusString(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "the device does not support the operation";
    case CUBLAS_STATUS_MAPPING_ERROR: return "access to GPU memory failed";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "an internal operation failed";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
    case CUBLAS_STATUS_LICENSE_ERROR: return "an error was detected when checking the license";
  }
  return "unknown cuBLAS status";
}

cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa,
                              cublasOperation_t transb, int m, int n, int k, const float* alpha,
                              const float* A, int lda, const float* B, int ldb, const float* beta,
                              float* C, int ldc) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!valid_op(transa) || !valid_op(transb)) return CUBLAS_STATUS_INVALID_VALUE;
  if (m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
  const bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;  // real data: C == T
  // Stored shapes: A is m x k (k x m transposed), B is k x n (n x k transposed), C is m x n.
  const int a_rows = ta ? k : m, a_cols = ta ? m : k;
  const int b_rows = tb ? n : k, b_cols = tb ? k : n;
  if (lda < std::max(1, a_rows) || ldb < std::max(1, b_rows) || ldc < std::max(1, m))
    return CUBLAS_STATUS_INVALID_VALUE;
  if (!alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;  // nothing to compute or write

  GemmArgs g;
  g.trans_a = ta;
  g.trans_b = tb;
  g.m = m;
  g.n = n;
  g.k = k;
  g.alpha = *alpha;  // host pointer mode: read now
  g.beta = *beta;
  g.A = A;
  g.lda = lda;
  g.B = B;
  g.ldb = ldb;
  g.C = C;
  g.ldc = ldc;
  g.rounding = rounding_for(handle->math);

  const char* who = "cublasSgemm";
  if (k > 0 && g.alpha != 0.f) {
    if (!bp_emu::check_device_range(A, span_bytes(a_rows, a_cols, lda), who,
                                    describe("A", a_rows, a_cols, lda)) ||
        !bp_emu::check_device_range(B, span_bytes(b_rows, b_cols, ldb), who,
                                    describe("B", b_rows, b_cols, ldb)))
      return CUBLAS_STATUS_EXECUTION_FAILED;  // the kernel would fault; the error is sticky
  }
  if (!C) return CUBLAS_STATUS_INVALID_VALUE;
  if (!bp_emu::check_device_range(C, span_bytes(m, n, ldc), who, describe("C", m, n, ldc)))
    return CUBLAS_STATUS_EXECUTION_FAILED;

  if (bp_emu::enqueue(handle->stream, who, [g] { run_sgemm(g); }) != cudaSuccess)
    return CUBLAS_STATUS_EXECUTION_FAILED;
  return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"
