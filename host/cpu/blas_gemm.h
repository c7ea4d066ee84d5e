// Row-major GEMM on raw pointers with leading dimensions, for float and double: OpenBLAS when
// the build has it, else a plain built-in loop, correct and about five times slower. Either way
// the result does not depend on the thread count (a run's history is the same for any --threads).
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <string>

#if defined(BRAINPROP_HAVE_OPENBLAS)
#include <cblas.h>
#endif

namespace bp::cpu {

#if defined(BRAINPROP_HAVE_OPENBLAS)
inline void blas_gemm(bool ta, bool tb, int m, int n, int k, double alpha, const float* a, int lda,
                      const float* b, int ldb, double beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
              k, static_cast<float>(alpha), a, lda, b, ldb, static_cast<float>(beta), c, ldc);
}
inline void blas_gemm(bool ta, bool tb, int m, int n, int k, double alpha, const double* a, int lda,
                      const double* b, int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
              k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// The same result for any thread count: OpenBLAS's own threading is not (it may split a product
// differently, e.g. x W^T with K = 784 on 2 threads), so we split C into panels of whole rows (or
// columns, whichever C has more of) whose size depends on the shape only, and threads share out
// the panels. Inside our parallel region OpenBLAS's OpenMP build runs each call on its own thread
// (it follows omp_in_parallel and omp_get_max_threads), so each element of C is computed by the
// same single-threaded call whatever the thread count. Products of at most 2^18 multiply-adds
// are one call: OpenBLAS runs those single-threaded itself (interface/gemm.c: MNK <= 65536 *
// GEMM_MULTITHREAD_THRESHOLD, 4), as it does any call made inside a parallel region.
template <typename T>
void gemm(bool ta, bool tb, int m, int n, int k, double alpha, const T* a, int lda, const T* b,
          int ldb, double beta, T* c, int ldc) {
  const bool by_rows = m >= n;
  const int extent = by_rows ? m : n;
  if (int64_t(m) * n * k <= (int64_t(1) << 18) || omp_in_parallel()) {
    blas_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  const int panel = std::max(64, (extent / 32 + 63) / 64 * 64);
  const int panels = (extent + panel - 1) / panel;
#pragma omp parallel for schedule(static)
  for (int p = 0; p < panels; ++p) {
    const int first = p * panel, count = std::min(panel, extent - first);
    if (by_rows)  // rows of C are rows of op(A): A's rows, or A's columns when transposed
      blas_gemm(ta, tb, count, n, k, alpha, ta ? a + first : a + int64_t(first) * lda, lda, b, ldb,
                beta, c + int64_t(first) * ldc, ldc);
    else  // columns of C are columns of op(B)
      blas_gemm(ta, tb, m, count, k, alpha, a, lda, tb ? b + int64_t(first) * ldb : b + first, ldb,
                beta, c + first, ldc);
  }
}
inline std::string blas_name() { return std::string("OpenBLAS (") + openblas_get_config() + ")"; }
// (In OpenBLAS's OpenMP build this also sets OpenMP's thread count, so it must match ours.)
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
