// Deterministic per-column sums of a [rows, cols] view, in double: blocks of 32 columns x
// kRowsPerChunk rows write one partial per (chunk, column); a second pass adds the chunks in
// order. The order never depends on scheduling, so a run repeats bit for bit. Used by the
// bias updates and batch normalisation.
#pragma once
#include <cstdint>

#include "cuda/launch.cuh"

namespace bp::cuda {

constexpr int kRowsPerChunk = 256;
constexpr int kColumnTile = 32;
constexpr int kRowLanes = 8;

__host__ __device__ inline int64_t column_chunks(int64_t rows) {
  return (rows + kRowsPerChunk - 1) / kRowsPerChunk;
}

// partial[chunk * cols + c] = sum over the chunk's rows r of value(r, c); or, when the rows
// fit one chunk (the dense layers' batches), finish(c, sum) directly: one launch, not two.
// gridDim.y is limited to 65535, so a block walks the chunks y, y + gridDim.y, ... (above
// 65535 chunks, about 16.7 M rows, one block row takes several).
template <bool kOneChunk, typename Value, typename Finish>
__global__ void column_partials_kernel(int64_t rows, int64_t cols, Value value,
                                       double* __restrict__ partial, Finish finish) {
  __shared__ double lanes[kRowLanes][kColumnTile + 1];
  const int64_t c = int64_t(blockIdx.x) * kColumnTile + threadIdx.x;
  const int64_t chunks = kOneChunk ? 1 : column_chunks(rows);
  for (int64_t chunk = blockIdx.y; chunk < chunks; chunk += gridDim.y) {  // uniform in the block
    const int64_t r0 = chunk * kRowsPerChunk;
    const int64_t r1 = r0 + kRowsPerChunk < rows ? r0 + kRowsPerChunk : rows;
    double sum = 0.0;
    if (c < cols)
      for (int64_t r = r0 + threadIdx.y; r < r1; r += kRowLanes) sum += value(r, c);
    lanes[threadIdx.y][threadIdx.x] = sum;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
      double total = 0.0;
      for (int l = 0; l < kRowLanes; ++l) total += lanes[l][threadIdx.x];
      if (kOneChunk)
        finish(c, total);
      else
        partial[chunk * cols + c] = total;
    }
    __syncthreads();  // the lanes are rewritten by the next chunk
  }
}

// finish(c, total) with total the column's sum over all chunks, added in chunk order.
template <typename Finish>
__global__ void column_finish_kernel(int64_t chunks, int64_t cols, const double* __restrict__ partial,
                                     Finish finish) {
  BP_GRID_STRIDE(c, cols) {
    double total = 0.0;
    for (int64_t k = 0; k < chunks; ++k) total += partial[k * cols + c];
    finish(c, total);
  }
}

// The plain value of a [rows, cols] row-major matrix, in double.
struct ReadColumns {
  const float* m;
  int64_t cols;
  __device__ double operator()(int64_t r, int64_t c) const { return double(m[r * cols + c]); }
};

template <typename Value, typename Finish>
void column_sums(int64_t rows, int64_t cols, Value value, Finish finish, double* partial,
                 cudaStream_t s) {
  if (cols <= 0) return;
  const int64_t chunks = std::max<int64_t>(column_chunks(rows), 1);
  const int64_t tiles = (cols + kColumnTile - 1) / kColumnTile;
  BP_CHECK(tiles <= 0x7fffffffLL, "column sums over " << cols << " columns: too many for one launch");
  const dim3 grid(unsigned(tiles), unsigned(std::min<int64_t>(chunks, 65535)));
  const dim3 block(kColumnTile, kRowLanes);
  if (chunks == 1) {
    BP_LAUNCH(column_partials_kernel<true>, grid, block, 0, s, rows, cols, value, partial, finish);
    BP_CUDA_CHECK_LAUNCH(column_partials_kernel);
    return;
  }
  BP_LAUNCH(column_partials_kernel<false>, grid, block, 0, s, rows, cols, value, partial, finish);
  BP_CUDA_CHECK_LAUNCH(column_partials_kernel);
  BP_LAUNCH(column_finish_kernel, grid_for(cols), kThreads, 0, s, chunks, cols, partial, finish);
  BP_CUDA_CHECK_LAUNCH(column_finish_kernel);
}

}  // namespace bp::cuda
