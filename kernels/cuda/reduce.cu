// Bias updates: the per-column sums of the feedback, written into the bias in place.
#include "cuda/column_sums.cuh"
#include "cuda/ops.h"

namespace bp::cuda {
namespace {

struct SgdBias {
  float* bias;
  float decay, step;
  __device__ void operator()(int64_t c, double total) const {
    bias[c] = decay * bias[c] - step * float(total);
  }
};

}  // namespace

int64_t column_workspace_doubles(int64_t rows, int64_t cols) {
  return column_chunks(rows) * cols;
}

void update_bias(float* bias, const float* dy, int64_t rows, int64_t cols, float decay,
                 float step, double* workspace, cudaStream_t s) {
  column_sums(rows, cols, ReadColumns{dy, cols}, SgdBias{bias, decay, step}, workspace, s);
}

}  // namespace bp::cuda
