// Row-major GEMM on raw pointers with leading dimensions, for float and double (OpenBLAS).
// Inside an OpenMP parallel region the OpenMP build of OpenBLAS runs single-threaded.
#pragma once
#include <cblas.h>

namespace bp::cpu {

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

}  // namespace bp::cpu
