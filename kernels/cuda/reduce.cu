// Bias updates: the per-column sums of the feedback, written into the bias in place.
#include "cuda/column_sums.cuh"
#include "cuda/ops.h"
#include "math/finite.h"

namespace bp::cuda {
namespace {

struct SgdBias {
  float* bias;
  float decay, step;
  __device__ void operator()(int64_t c, double total) const {
    bias[c] = decay * bias[c] - step * float(total);
  }
};

// 1 for each NaN or Inf of a float vector viewed as one column.
struct NonFinite {
  const float* x;
  __device__ double operator()(int64_t r, int64_t) const { return is_nonfinite(x[r]) ? 1.0 : 0.0; }
};

struct AddToSlot {
  double* slot;
  __device__ void operator()(int64_t, double total) const { *slot += total; }
};

}  // namespace

void count_nonfinite(const float* x, int64_t n, double* counts, int64_t slot, double* workspace,
                     cudaStream_t s) {
  if (n <= 0) return;
  column_sums(n, 1, NonFinite{x}, AddToSlot{counts + slot}, workspace, s);
}

int64_t column_workspace_doubles(int64_t rows, int64_t cols) {
  return column_chunks(rows) * cols;
}

void update_bias(float* bias, const float* dy, int64_t rows, int64_t cols, float decay,
                 float step, double* workspace, cudaStream_t s) {
  column_sums(rows, cols, ReadColumns{dy, cols}, SgdBias{bias, decay, step}, workspace, s);
}

}  // namespace bp::cuda
