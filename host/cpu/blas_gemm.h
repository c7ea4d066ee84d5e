// Row-major GEMM on raw pointers with leading dimensions, for float and double: OpenBLAS when
// the build has it (inside an OpenMP parallel region its OpenMP build runs single-threaded),
// else a plain built-in loop, correct and about five times slower.
#pragma once
#include <cstdint>
#include <string>

#if defined(BRAINPROP_HAVE_OPENBLAS)
#include <cblas.h>
#endif

namespace bp::cpu {

#if defined(BRAINPROP_HAVE_OPENBLAS)
inline void gemm(bool ta, bool tb, int m, int n, int k, double alpha, const float* a, int lda,
                 const float* b, int ldb, double beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
              k, static_cast<float>(alpha), a, lda, b, ldb, static_cast<float>(beta), c, ldc);
}
inline void gemm(bool ta, bool tb, int m, int n, int k, double alpha, const double* a, int lda,
                 const double* b, int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
              k, alpha, a, lda, b, ldb, beta, c, ldc);
}
inline std::string blas_name() { return std::string("OpenBLAS (") + openblas_get_config() + ")"; }
inline void set_blas_threads(int threads) { openblas_set_num_threads(threads); }
#else
// C = alpha op(A) op(B) + beta C, one row of C per iteration (rows split across threads; a
// call inside a parallel region runs on its thread). beta = 0 overwrites C, as BLAS does.
template <typename T>
void builtin_gemm(bool ta, bool tb, int m, int n, int k, T alpha, const T* a, int lda, const T* b,
                  int ldb, T beta, T* c, int ldc) {
#pragma omp parallel for schedule(static) if (int64_t(m) * n * k > 32768)
  for (int i = 0; i < m; ++i) {
    T* ci = c + int64_t(i) * ldc;
    for (int j = 0; j < n; ++j) ci[j] = beta == T(0) ? T(0) : beta * ci[j];
    if (!tb) {
      for (int p = 0; p < k; ++p) {
        const T aip = alpha * (ta ? a[int64_t(p) * lda + i] : a[int64_t(i) * lda + p]);
        const T* bp = b + int64_t(p) * ldb;
#pragma omp simd
        for (int j = 0; j < n; ++j) ci[j] += aip * bp[j];
      }
    } else {
      for (int j = 0; j < n; ++j) {
        const T* bj = b + int64_t(j) * ldb;
        T sum = T(0);
        if (ta) {
          for (int p = 0; p < k; ++p) sum += a[int64_t(p) * lda + i] * bj[p];
        } else {
          const T* ai = a + int64_t(i) * lda;
#pragma omp simd reduction(+ : sum)
          for (int p = 0; p < k; ++p) sum += ai[p] * bj[p];
        }
        ci[j] += alpha * sum;
      }
    }
  }
}
inline void gemm(bool ta, bool tb, int m, int n, int k, double alpha, const float* a, int lda,
                 const float* b, int ldb, double beta, float* c, int ldc) {
  builtin_gemm(ta, tb, m, n, k, float(alpha), a, lda, b, ldb, float(beta), c, ldc);
}
inline void gemm(bool ta, bool tb, int m, int n, int k, double alpha, const double* a, int lda,
                 const double* b, int ldb, double beta, double* c, int ldc) {
  builtin_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
inline std::string blas_name() { return "built-in GEMM (no OpenBLAS in this build: about 5x slower)"; }
inline void set_blas_threads(int) {}
#endif

}  // namespace bp::cpu
