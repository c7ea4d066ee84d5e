// The emulator's cuBLAS fake against float64 references written from the BLAS definition:
// C = alpha * op(A) op(B) + beta * C, column-major, op(X) = X, X^T (T) or X^H = X^T (C, real).
#include <cublas_v2.h>

#include <cmath>
#include <limits>
#include <vector>

#include "emu_test_helpers.h"
#include "runtime.h"

namespace {

using emu_test::DeviceFloats;
using emu_test::Exact;

struct Handle {
  cublasHandle_t h = nullptr;
  Handle() { EXPECT_EQ(cublasCreate(&h), CUBLAS_STATUS_SUCCESS); }
  ~Handle() { cublasDestroy(h); }
};

// Element (i, j) of op(X), X column-major with leading dimension ld.
float op_at(const std::vector<float>& x, int ld, cublasOperation_t op, int i, int j) {
  return op == CUBLAS_OP_N ? x[size_t(j) * ld + i] : x[size_t(i) * ld + j];
}

// The expected C (ldc-strided, every stored element; rows past m keep their old values).
std::vector<Exact> reference_gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                  double alpha, const std::vector<float>& A, int lda,
                                  const std::vector<float>& B, int ldb, double beta,
                                  const std::vector<float>& C, int ldc) {
  std::vector<Exact> out(C.size());
  for (size_t i = 0; i < C.size(); ++i) out[i].add(C[i]);  // untouched storage stays as is
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) {
      Exact e;
      for (int p = 0; p < k; ++p) e.add(alpha * double(op_at(A, lda, ta, i, p)) * op_at(B, ldb, tb, p, j));
      if (beta != 0) e.add(beta * double(C[size_t(j) * ldc + i]));
      out[size_t(j) * ldc + i] = e;
    }
  return out;
}

struct GemmCase {
  int m, n, k;
  int lda_extra, ldb_extra, ldc_extra;
};

// Runs one SGEMM through the fake and checks it against reference_gemm.
void check_gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, const GemmCase& c,
                float alpha, float beta, double rel, uint32_t seed) {
  const int a_rows = ta == CUBLAS_OP_N ? c.m : c.k, a_cols = ta == CUBLAS_OP_N ? c.k : c.m;
  const int b_rows = tb == CUBLAS_OP_N ? c.k : c.n, b_cols = tb == CUBLAS_OP_N ? c.n : c.k;
  const int lda = a_rows + c.lda_extra, ldb = b_rows + c.ldb_extra, ldc = c.m + c.ldc_extra;
  const auto A = emu_test::random_floats(size_t(lda) * a_cols, seed);
  const auto B = emu_test::random_floats(size_t(ldb) * b_cols, seed + 1);
  const auto C0 = emu_test::random_floats(size_t(ldc) * c.n, seed + 2);
  DeviceFloats dA(A), dB(B), dC(C0);
  ASSERT_EQ(cublasSgemm(h, ta, tb, c.m, c.n, c.k, &alpha, dA.get(), lda, dB.get(), ldb, &beta,
                        dC.get(), ldc),
            CUBLAS_STATUS_SUCCESS);
  const auto expected = reference_gemm(ta, tb, c.m, c.n, c.k, alpha, A, lda, B, ldb, beta, C0, ldc);
  EXPECT_TRUE(emu_test::within(dC.download(), expected, rel,
                               "C (op " + std::to_string(ta) + "," + std::to_string(tb) + ", " +
                                   std::to_string(c.m) + "x" + std::to_string(c.n) + "x" +
                                   std::to_string(c.k) + ")"));
}

const cublasOperation_t kOps[] = {CUBLAS_OP_N, CUBLAS_OP_T, CUBLAS_OP_C};

// Float accumulation over k terms: error below k * 2^-24 of the magnitudes (plus a margin).
double fp32_tolerance(int k) { return (k + 4) * std::ldexp(1.0, -24); }

}  // namespace

TEST(CublasFake, AllTransposeCombinationsWithPaddedLeadingDimensions) {
  Handle h;
  const GemmCase c{37, 29, 23, 3, 5, 2};
  uint32_t seed = 10;
  for (cublasOperation_t ta : kOps)
    for (cublasOperation_t tb : kOps) check_gemm(h.h, ta, tb, c, 1.5f, -0.5f, fp32_tolerance(c.k), seed += 3);
}

TEST(CublasFake, LargerShapesCrossTileAndBlockEdges) {
  Handle h;
  for (const GemmCase& c : {GemmCase{100, 70, 300, 0, 0, 0}, GemmCase{257, 131, 515, 1, 7, 3},
                            GemmCase{1, 1, 1000, 0, 0, 0}, GemmCase{17, 1, 5, 0, 0, 0},
                            GemmCase{1, 13, 7, 4, 0, 9}})
    for (cublasOperation_t ta : {CUBLAS_OP_N, CUBLAS_OP_T})
      for (cublasOperation_t tb : {CUBLAS_OP_N, CUBLAS_OP_T})
        check_gemm(h.h, ta, tb, c, 0.75f, 0.25f, fp32_tolerance(c.k), 77);
}

TEST(CublasFake, BetaZeroNeverReadsC) {
  Handle h;
  const int m = 19, n = 11, k = 8;
  const auto A = emu_test::random_floats(size_t(m) * k, 1), B = emu_test::random_floats(size_t(k) * n, 2);
  DeviceFloats dA(A), dB(B), dC(size_t(m) * n);
  dC.fill_nan();
  const float alpha = 2.f, beta = 0.f;
  ASSERT_EQ(cublasSgemm(h.h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, dA.get(), m, dB.get(), k,
                        &beta, dC.get(), m),
            CUBLAS_STATUS_SUCCESS);
  const auto expected = reference_gemm(CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, alpha, A, m, B, k, 0.0,
                                       std::vector<float>(size_t(m) * n, 0.f), m);
  EXPECT_TRUE(emu_test::within(dC.download(), expected, fp32_tolerance(k), "C"));
}

TEST(CublasFake, KZeroScalesC) {
  Handle h;
  const int m = 5, n = 4;
  const auto C0 = emu_test::random_floats(size_t(m) * n, 3);
  DeviceFloats dA(1), dB(1), dC(C0);
  const float alpha = 1.f, beta = 3.f;
  ASSERT_EQ(cublasSgemm(h.h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, 0, &alpha, dA.get(), m, dB.get(), 1,
                        &beta, dC.get(), m),
            CUBLAS_STATUS_SUCCESS);
  const auto got = dC.download();
  for (size_t i = 0; i < got.size(); ++i) EXPECT_FLOAT_EQ(got[i], 3.f * C0[i]);
}

TEST(CublasFake, InvalidArgumentsAreRefusedAndTouchNothing) {
  Handle h;
  const int m = 6, n = 5, k = 4;
  DeviceFloats dA(64), dB(64), dC(64);
  const auto C0 = emu_test::random_floats(64, 9);
  dC.upload(C0);
  const float one = 1.f, zero = 0.f;
  auto gemm = [&](cublasOperation_t ta, cublasOperation_t tb, int mm, int nn, int kk, int lda, int ldb,
                  int ldc, const float* alpha = nullptr, const float* beta = nullptr, bool null_scalars = false) {
    const float* a = null_scalars ? alpha : &one;
    const float* b = null_scalars ? beta : &zero;
    return cublasSgemm(h.h, ta, tb, mm, nn, kk, a, dA.get(), lda, dB.get(), ldb, b, dC.get(), ldc);
  };
  const cublasOperation_t N = CUBLAS_OP_N, T = CUBLAS_OP_T;
  EXPECT_EQ(gemm(N, N, -1, n, k, m, k, m), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(gemm(N, N, m, -1, k, m, k, m), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(gemm(N, N, m, n, -1, m, k, m), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(gemm(cublasOperation_t(7), N, m, n, k, m, k, m), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(gemm(N, CUBLAS_OP_CONJG, m, n, k, m, k, m), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(gemm(N, N, m, n, k, m - 1, k, m), CUBLAS_STATUS_INVALID_VALUE);  // lda < m
  EXPECT_EQ(gemm(T, N, m, n, k, k - 1, k, m), CUBLAS_STATUS_INVALID_VALUE);  // lda < k
  EXPECT_EQ(gemm(N, N, m, n, k, m, k - 1, m), CUBLAS_STATUS_INVALID_VALUE);  // ldb < k
  EXPECT_EQ(gemm(N, T, m, n, k, m, n - 1, m), CUBLAS_STATUS_INVALID_VALUE);  // ldb < n
  EXPECT_EQ(gemm(N, N, m, n, k, m, k, m - 1), CUBLAS_STATUS_INVALID_VALUE);  // ldc < m
  EXPECT_EQ(gemm(N, N, 0, n, k, 0, k, 1), CUBLAS_STATUS_INVALID_VALUE);      // lda < max(1, 0)
  EXPECT_EQ(gemm(N, N, m, n, k, m, k, m, nullptr, &zero, true), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(gemm(N, N, m, n, k, m, k, m, &one, nullptr, true), CUBLAS_STATUS_INVALID_VALUE);
  // Valid but transposed-looking leading dimensions are fine (lda >= k for T even if < m).
  EXPECT_EQ(gemm(T, T, 2, 2, 1, 1, 2, 2), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasSgemm(nullptr, N, N, m, n, k, &one, dA.get(), m, dB.get(), k, &zero, dC.get(), m),
            CUBLAS_STATUS_NOT_INITIALIZED);
  const auto after = dC.download();
  for (size_t i = 4; i < after.size(); ++i) EXPECT_EQ(after[i], C0[i]) << i;  // only the 2x2 call wrote
}

TEST(CublasFake, Tf32RoundsEachInputToTenMantissaBits) {
  Handle h;
  ASSERT_EQ(cublasSetMathMode(h.h, CUBLAS_TF32_TENSOR_OP_MATH), CUBLAS_STATUS_SUCCESS);
  const int m = 33, n = 21, k = 64;
  const auto A = emu_test::random_floats(size_t(m) * k, 5), B = emu_test::random_floats(size_t(k) * n, 6);
  DeviceFloats dA(A), dB(B), dC(size_t(m) * n);
  const float alpha = 1.f, beta = 0.f;
  ASSERT_EQ(cublasSgemm(h.h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, dA.get(), m, dB.get(), k,
                        &beta, dC.get(), m),
            CUBLAS_STATUS_SUCCESS);
  const auto expected = reference_gemm(CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, 1.0, A, m, B, k, 0.0,
                                       std::vector<float>(size_t(m) * n), m);
  // Each input off by at most 2^-11 relative: a product by at most ~2^-10, plus float sums.
  const double tf32_rel = 2 * std::ldexp(1.0, -11) + std::ldexp(1.0, -22) + fp32_tolerance(k);
  const auto got = dC.download();
  EXPECT_TRUE(emu_test::within(got, expected, tf32_rel, "C (TF32)"));
  // ...and it does round: random inputs cannot all come out as exact as FP32.
  EXPECT_FALSE(emu_test::within(got, expected, fp32_tolerance(k), "C (TF32 as FP32)"));
}

TEST(CublasFake, LowMantissaBitsSurviveOnlyInFp32Modes) {
  // a = 1 + 2^-12 and 1 + 3 * 2^-12: both exact in FP32; TF32 (10 mantissa bits, ulp 2^-10)
  // rounds them to 1 and 1 + 2^-10 (a quarter of an ulp down, three quarters up).
  const float a_vals[2] = {emu_test::with_bits(0x3f800800u), emu_test::with_bits(0x3f801800u)};
  ASSERT_EQ(double(a_vals[0]), 1.0 + std::ldexp(1.0, -12));
  ASSERT_EQ(double(a_vals[1]), 1.0 + 3 * std::ldexp(1.0, -12));
  DeviceFloats dA(std::vector<float>{a_vals[0], a_vals[1]}), dB(std::vector<float>{1.f}),
      dC(std::vector<float>{0.f, 0.f});
  const float alpha = 1.f, beta = 0.f;
  for (cublasMath_t mode : {CUBLAS_DEFAULT_MATH, CUBLAS_PEDANTIC_MATH, CUBLAS_TF32_TENSOR_OP_MATH}) {
    Handle h;
    ASSERT_EQ(cublasSetMathMode(h.h, mode), CUBLAS_STATUS_SUCCESS);
    ASSERT_EQ(cublasSgemm(h.h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 1, 1, &alpha, dA.get(), 2, dB.get(), 1,
                          &beta, dC.get(), 2),
              CUBLAS_STATUS_SUCCESS);
    const auto c = dC.download();
    if (mode == CUBLAS_TF32_TENSOR_OP_MATH) {
      EXPECT_EQ(c[0], 1.f);
      EXPECT_EQ(double(c[1]), 1.0 + std::ldexp(1.0, -10));
    } else {
      EXPECT_EQ(c[0], a_vals[0]) << "mode " << mode;
      EXPECT_EQ(c[1], a_vals[1]) << "mode " << mode;
    }
  }
}

TEST(CublasFake, HandleStateRoundTrips) {
  Handle h;
  cudaStream_t s = nullptr, got = reinterpret_cast<cudaStream_t>(1);
  ASSERT_EQ(cudaStreamCreate(&s), cudaSuccess);
  EXPECT_EQ(cublasGetStream(h.h, &got), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(got, nullptr);
  EXPECT_EQ(cublasSetStream(h.h, s), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasGetStream(h.h, &got), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(got, s);
  cublasMath_t mode = CUBLAS_PEDANTIC_MATH;
  EXPECT_EQ(cublasGetMathMode(h.h, &mode), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(mode, CUBLAS_DEFAULT_MATH);
  EXPECT_EQ(cublasSetMathMode(h.h, CUBLAS_TF32_TENSOR_OP_MATH), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasGetMathMode(h.h, &mode), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(mode, CUBLAS_TF32_TENSOR_OP_MATH);
  DeviceFloats workspace(1 << 16);
  EXPECT_EQ(cublasSetWorkspace(h.h, workspace.get(), workspace.bytes()), CUBLAS_STATUS_SUCCESS);
  EXPECT_STREQ(cublasGetStatusName(CUBLAS_STATUS_INVALID_VALUE), "CUBLAS_STATUS_INVALID_VALUE");
  EXPECT_STRNE(cublasGetStatusString(CUBLAS_STATUS_INVALID_VALUE), "");

  // The product runs on the handle's stream, in order.
  DeviceFloats dA(std::vector<float>{2.f}), dB(std::vector<float>{3.f}), dC(std::vector<float>{1.f});
  const float alpha = 1.f, beta = 1.f;
  EXPECT_EQ(cublasSgemm(h.h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &alpha, dA.get(), 1, dB.get(), 1,
                        &beta, dC.get(), 1),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cudaStreamSynchronize(s), cudaSuccess);
  EXPECT_EQ(dC.download()[0], 7.f);
  EXPECT_EQ(cudaStreamDestroy(s), cudaSuccess);
}

TEST(CublasFake, OperandsOutsideDeviceMemoryFault) {
  {
    Handle h;
    const int m = 4, n = 3, k = 5;
    std::vector<float> host_a(size_t(m) * k, 1.f);
    DeviceFloats dA(size_t(m) * k), dB(size_t(k) * n), dC(size_t(m) * n);
    const float alpha = 1.f, beta = 0.f;
    // A in host memory: the kernel would fault; the error is sticky and names the call.
    EXPECT_EQ(cublasSgemm(h.h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, host_a.data(), m,
                          dB.get(), k, &beta, dC.get(), m),
              CUBLAS_STATUS_EXECUTION_FAILED);
    EXPECT_NE(bp_emu::last_error_message().find("cublasSgemm"), std::string::npos)
        << bp_emu::last_error_message();
  }
  bp_emu::reset_device();
  {
    Handle h;
    const int m = 4, n = 3, k = 5;
    DeviceFloats dA(size_t(m) * k), dB(size_t(k) * n), dC(size_t(m) * n);
    const float alpha = 1.f, beta = 0.f;
    // A leading dimension one larger than the buffer allows reaches past its end.
    EXPECT_EQ(cublasSgemm(h.h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, dA.get(), m + 1,
                          dB.get(), k, &beta, dC.get(), m),
              CUBLAS_STATUS_EXECUTION_FAILED);
  }
  bp_emu::reset_device();
}
