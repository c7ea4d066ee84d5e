// Locally connected 2-D layers on the GPU as implicit GEMMs: every output position p is a small
// GEMM whose patch operand is gathered straight from the NHWC input through patch_source(), so
// no unfolded copy of the input is ever made. Design, tiling and roofline:
// docs/local2d-kernels.md.
//
// All three kernels share one block-level GEMM skeleton: a 32 x 32 output tile per block of 64
// threads, each thread accumulating a 4 x 4 micro-tile in registers, the reduction staged
// through shared memory kTileK = 16 deep at a time, with the next step's global loads issued
// into registers before the current step's FMAs (one-stage software pipeline). What differs is
// only what the tile's rows, columns and reduction index mean, which lives in a "stage" struct:
//
//   forward        rows = samples b,   cols = out channels o,  reduction = patch index k
//   backward_data  rows = samples b,   cols = in channels c,   reduction = (covering p, o)
//   update         rows = out chans o, cols = patch index k,   reduction = samples b
//
// Every output element is produced by exactly one thread, with a fixed summation order: the
// kernels are deterministic and use no atomics. They allocate nothing, synchronise nothing on the
// host and only launch on the given stream, so they can be captured into a CUDA graph.
//
// The stage structs and the micro-kernel are __host__ __device__ so that a host emulation of the
// block schedule can check the index math without a GPU.
#include "cuda/local2d.h"
#include "cuda/kernel_launch.cuh"

#include "cuda_check.h"

namespace bp::cuda {
namespace {

#define BP_LC_HD __host__ __device__ __forceinline__
#if defined(__CUDA_ARCH__)
#define BP_LC_UNROLL _Pragma("unroll")
#else
#define BP_LC_UNROLL  // the host pass (emulation only) ignores it
#endif

constexpr int kTile = 32;                    // output tile: kTile rows x kTile columns
constexpr int kTileK = 16;                   // reduction depth staged in shared memory per step
constexpr int kMicro = 4;                    // each thread computes kMicro x kMicro outputs
constexpr int kThreadsPerRow = kTile / kMicro;  // 8 threads across the columns
constexpr int kThreads = kThreadsPerRow * (kTile / kMicro);  // 64 threads per block
constexpr int kStride = kTile + 4;           // padded shared row; keeps float4 alignment
constexpr int kLoads = kTileK * kTile / kThreads;  // 8 elements of each operand per thread a step

static_assert(kTile % kMicro == 0 && kMicro == 4, "the micro-kernel reads float4s");
static_assert(kThreads % kTileK == 0 && kThreads % kTile == 0, "loader mappings");
static_assert(kLoads * kThreads == kTileK * kTile, "each shared cell is loaded exactly once");

// The staged operands, reduction-major: a[kk][row], b[kk][col]. One step of the micro-kernel
// reads a float4 from each (4 rows, 4 columns) and does 16 FMAs.
struct alignas(16) Tiles {
  float a[kTileK][kStride];
  float b[kTileK][kStride];
};

// acc[i][j] += sum_kk a[kk][tm*4 + i] * b[kk][tn*4 + j] over one staged step. Reduction entries
// past the end of the real reduction are zero in both operands, so they add exactly 0.
BP_LC_HD void multiply_tile(const Tiles& s, int tm, int tn, float (&acc)[kMicro][kMicro]) {
BP_LC_UNROLL
  for (int kk = 0; kk < kTileK; ++kk) {
    const float4 a4 = *reinterpret_cast<const float4*>(&s.a[kk][tm * kMicro]);
    const float4 b4 = *reinterpret_cast<const float4*>(&s.b[kk][tn * kMicro]);
    const float a[kMicro] = {a4.x, a4.y, a4.z, a4.w};
    const float b[kMicro] = {b4.x, b4.y, b4.z, b4.w};
BP_LC_UNROLL
    for (int i = 0; i < kMicro; ++i)
BP_LC_UNROLL
      for (int j = 0; j < kMicro; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
  }
}

BP_LC_HD int ceil_div(int a, int b) { return (a + b - 1) / b; }

BP_LC_HD long long sample_size(const Conv2dGeometry& g) {
  return static_cast<long long>(g.in_h) * g.in_w * g.in_c;
}

// ---------------------------------------------------------------------------------------------
// Forward: Y_p[b, o] = sum_k X_p[b, k] * W_p[o, k]; block (p, batch tile, out-channel tile).
// Loader: thread t loads reduction column lk = t % 16 for rows lr + 4 i (i < 8), so a warp reads
// 16 consecutive k of two rows: consecutive input channels / pixels of a patch row in x, and
// consecutive floats of a weight row.
struct ForwardArgs {
  const float* x;
  const float* w;
  float* y;
  Conv2dGeometry g;
};

struct ForwardStage {
  static constexpr int kRowStep = kThreads / kTileK;  // 4
  const float* x;
  const float* wp;  // W_p: [out_c, K]
  Conv2dGeometry g;
  int p, oy, ox, b0, o0, lk, lr, K, O;
  long long sample;
  float xv[kLoads], wv[kLoads];

  BP_LC_HD ForwardStage(const ForwardArgs& args, int bx, int by, int bz, int t)
      : x(args.x),
        wp(args.w + static_cast<long long>(bx) * args.g.out_c * args.g.patch_size()),
        g(args.g),
        p(bx),
        oy(bx / args.g.out_w),
        ox(bx % args.g.out_w),
        b0(by * kTile),
        o0(bz * kTile),
        lk(t % kTileK),
        lr(t / kTileK),
        K(args.g.patch_size()),
        O(args.g.out_c),
        sample(sample_size(args.g)) {}

  BP_LC_HD int steps() const { return ceil_div(K, kTileK); }

  BP_LC_HD void fetch(int step) {
    const int k = step * kTileK + lk;
    const bool k_ok = k < K;
    // patch_source is linear in the sample index: the offset within sample 0 plus b * sample.
    const long long src = k_ok ? patch_source(g, 0, oy, ox, k) : -1;
BP_LC_UNROLL
    for (int i = 0; i < kLoads; ++i) {
      const int r = lr + i * kRowStep;
      const int b = b0 + r, o = o0 + r;
      xv[i] = (src >= 0 && b < g.batch) ? x[src + b * sample] : 0.0f;
      wv[i] = (k_ok && o < O) ? wp[static_cast<long long>(o) * K + k] : 0.0f;
    }
  }

  BP_LC_HD void stash(Tiles& s) const {
BP_LC_UNROLL
    for (int i = 0; i < kLoads; ++i) {
      s.a[lk][lr + i * kRowStep] = xv[i];
      s.b[lk][lr + i * kRowStep] = wv[i];
    }
  }

  // y[b, p, o] = acc (y overwritten).
  BP_LC_HD void finish(const float (&acc)[kMicro][kMicro], int tm, int tn, float* y) const {
    const int P = g.positions();
BP_LC_UNROLL
    for (int i = 0; i < kMicro; ++i) {
      const int b = b0 + tm * kMicro + i;
      if (b >= g.batch) continue;
      float* row = y + (static_cast<long long>(b) * P + p) * O;
BP_LC_UNROLL
      for (int j = 0; j < kMicro; ++j) {
        const int o = o0 + tn * kMicro + j;
        if (o < O) row[o] = acc[i][j];
      }
    }
  }
};

// ---------------------------------------------------------------------------------------------
// Backward data, as a gather: block (input pixel (iy, ix), batch tile, in-channel tile) computes
//   dx[b, iy, ix, c] = sum over output positions p whose window covers (iy, ix),
//                      sum_o dy[b, p, o] * w[p, o, k_p + c],
// k_p = (ky * kernel_w + kx) * in_c the patch index of the pixel in p's window (the inverse of
// patch_source). The reduction runs over (covering position j, out channel o) in steps of 16
// out channels; every dx element is written exactly once, 0 where no window covers it.
struct BackwardArgs {
  const float* dy;
  const float* w;
  float* dx;
  Conv2dGeometry g;
};

// The output rows (or columns) whose windows cover input row iy: o * stride - pad <= iy and
// iy < o * stride - pad + kernel, clamped to [0, out). Sets *first and returns the count (>= 0).
BP_LC_HD int covering_range(int i, int kernel, int stride, int pad, int out, int* first) {
  const int hi_num = i + pad;                // o * stride <= i + pad
  const int lo_num = i + pad - kernel + 1;   // o * stride >= i + pad - kernel + 1
  const int lo = lo_num <= 0 ? 0 : ceil_div(lo_num, stride);
  const int hi = hi_num < 0 ? -1 : (hi_num / stride < out - 1 ? hi_num / stride : out - 1);
  *first = lo;
  return hi >= lo ? hi - lo + 1 : 0;
}

struct BackwardStage {
  static constexpr int kRowStep = kThreads / kTileK;  // 4: dy loader rows
  static constexpr int kRedStep = kThreads / kTile;   // 2: w loader reduction rows
  const float* dy;
  const float* w;
  Conv2dGeometry g;
  int iy, ix, b0, c0, t, K, O, P;
  int oy_first, ox_first, n_oy, n_ox, o_steps;
  float dyv[kLoads], wv[kLoads];

  BP_LC_HD BackwardStage(const BackwardArgs& args, int bx, int by, int bz, int thread)
      : dy(args.dy),
        w(args.w),
        g(args.g),
        iy(bx / args.g.in_w),
        ix(bx % args.g.in_w),
        b0(by * kTile),
        c0(bz * kTile),
        t(thread),
        K(args.g.patch_size()),
        O(args.g.out_c),
        P(args.g.positions()),
        oy_first(0),
        ox_first(0),
        n_oy(covering_range(iy, g.kernel_h, g.stride_h, g.pad_top, g.out_h, &oy_first)),
        n_ox(covering_range(ix, g.kernel_w, g.stride_w, g.pad_left, g.out_w, &ox_first)),
        o_steps(ceil_div(args.g.out_c, kTileK)) {}

  BP_LC_HD int steps() const { return n_oy * n_ox * o_steps; }

  BP_LC_HD void fetch(int step) {
    const int j = step / o_steps;  // covering position, row-major over (oy, ox)
    const int o_base = (step - j * o_steps) * kTileK;
    const int oy = oy_first + j / n_ox, ox = ox_first + j % n_ox;
    const int p = oy * g.out_w + ox;
    const int ky = iy - (oy * g.stride_h - g.pad_top);
    const int kx = ix - (ox * g.stride_w - g.pad_left);
    const int k_base = (ky * g.kernel_w + kx) * g.in_c;  // patch index of channel 0
    // dy tile: a[o - o_base][b - b0]; thread column lk = t % 16 over o, rows t / 16 + 4 i.
    {
      const int o = o_base + t % kTileK;
BP_LC_UNROLL
      for (int i = 0; i < kLoads; ++i) {
        const int b = b0 + t / kTileK + i * kRowStep;
        dyv[i] = (o < O && b < g.batch) ? dy[(static_cast<long long>(b) * P + p) * O + o] : 0.0f;
      }
    }
    // w tile: b[o - o_base][c - c0]; thread column t % 32 over c, reduction rows t / 32 + 2 i.
    {
      const int c = c0 + t % kTile;
BP_LC_UNROLL
      for (int i = 0; i < kLoads; ++i) {
        const int o = o_base + t / kTile + i * kRedStep;
        wv[i] = (o < O && c < g.in_c)
                    ? w[(static_cast<long long>(p) * O + o) * K + k_base + c]
                    : 0.0f;
      }
    }
  }

  BP_LC_HD void stash(Tiles& s) const {
BP_LC_UNROLL
    for (int i = 0; i < kLoads; ++i) {
      s.a[t % kTileK][t / kTileK + i * kRowStep] = dyv[i];
      s.b[t / kTile + i * kRedStep][t % kTile] = wv[i];
    }
  }

  // dx[b, iy, ix, c] = acc (dx overwritten; acc is 0 where nothing covers the pixel).
  BP_LC_HD void finish(const float (&acc)[kMicro][kMicro], int tm, int tn, float* dx) const {
BP_LC_UNROLL
    for (int i = 0; i < kMicro; ++i) {
      const int b = b0 + tm * kMicro + i;
      if (b >= g.batch) continue;
      float* pixel = dx + ((static_cast<long long>(b) * g.in_h + iy) * g.in_w + ix) * g.in_c;
BP_LC_UNROLL
      for (int j = 0; j < kMicro; ++j) {
        const int c = c0 + tn * kMicro + j;
        if (c < g.in_c) pixel[c] = acc[i][j];
      }
    }
  }
};

// ---------------------------------------------------------------------------------------------
// Update: block (p, out-channel tile, patch tile) computes G_p[o, k] = sum_b dY_p[b, o] X_p[b, k]
// over the whole batch, 16 samples a step, then writes w = decay * w - step * G in place: each
// weight is read and written by exactly one thread, after its sum is complete.
struct UpdateArgs {
  float* w;
  const float* dy;
  const float* x;
  Conv2dGeometry g;
  float decay, step;
};

struct UpdateStage {
  static constexpr int kRedStep = kThreads / kTile;  // 2: sample rows per loader pass
  const float* dy;
  const float* x;
  Conv2dGeometry g;
  int p, o0, k0, t, K, O, P;
  long long sample, src;  // src: this thread's patch column in sample 0, -1 in the padding
  float dyv[kLoads], xv[kLoads];

  BP_LC_HD UpdateStage(const UpdateArgs& args, int bx, int by, int bz, int thread)
      : dy(args.dy),
        x(args.x),
        g(args.g),
        p(bx),
        o0(by * kTile),
        k0(bz * kTile),
        t(thread),
        K(args.g.patch_size()),
        O(args.g.out_c),
        P(args.g.positions()),
        sample(sample_size(args.g)),
        src(-1) {
    // The loader's patch column is fixed for the whole batch loop: address it once.
    const int k = k0 + t % kTile;
    if (k < K) src = patch_source(g, 0, p / g.out_w, p % g.out_w, k);
  }

  BP_LC_HD int steps() const { return ceil_div(g.batch, kTileK); }

  // Both operands: thread column t % 32 (o for dy, k for x), sample rows t / 32 + 2 i.
  BP_LC_HD void fetch(int step) {
    const int o = o0 + t % kTile;
BP_LC_UNROLL
    for (int i = 0; i < kLoads; ++i) {
      const int b = step * kTileK + t / kTile + i * kRedStep;
      const bool b_ok = b < g.batch;
      dyv[i] = (b_ok && o < O) ? dy[(static_cast<long long>(b) * P + p) * O + o] : 0.0f;
      xv[i] = (b_ok && src >= 0) ? x[src + b * sample] : 0.0f;
    }
  }

  BP_LC_HD void stash(Tiles& s) const {
BP_LC_UNROLL
    for (int i = 0; i < kLoads; ++i) {
      s.a[t / kTile + i * kRedStep][t % kTile] = dyv[i];
      s.b[t / kTile + i * kRedStep][t % kTile] = xv[i];
    }
  }

  BP_LC_HD void finish(const float (&acc)[kMicro][kMicro], int tm, int tn, float* w, float decay,
                       float step) const {
BP_LC_UNROLL
    for (int i = 0; i < kMicro; ++i) {
      const int o = o0 + tm * kMicro + i;
      if (o >= O) continue;
      float* row = w + (static_cast<long long>(p) * O + o) * K;
BP_LC_UNROLL
      for (int j = 0; j < kMicro; ++j) {
        const int k = k0 + tn * kMicro + j;
        if (k < K) row[k] = decay * row[k] - step * acc[i][j];
      }
    }
  }
};

// ---------------------------------------------------------------------------------------------
// The block schedule shared by the three kernels. steps() is uniform across the block, so every
// thread reaches every __syncthreads(). The first barrier publishes the staged tile; the second
// keeps the next stash from overwriting it while other threads still read it. fetch() only
// writes the thread's own registers, so issuing it between the barriers is race-free.
template <class Stage>
__device__ __forceinline__ void block_gemm(Stage& stage, Tiles& tiles, int t,
                                           float (&acc)[kMicro][kMicro]) {
  const int tm = t / kThreadsPerRow, tn = t % kThreadsPerRow;
  const int steps = stage.steps();
  if (steps > 0) stage.fetch(0);
  for (int s = 0; s < steps; ++s) {
    stage.stash(tiles);
    __syncthreads();
    if (s + 1 < steps) stage.fetch(s + 1);  // next step's global loads overlap these FMAs
    multiply_tile(tiles, tm, tn, acc);
    __syncthreads();
  }
}

__global__ void __launch_bounds__(kThreads) local2d_forward_kernel(const ForwardArgs args) {
  __shared__ Tiles tiles;
  const int t = threadIdx.x;
  ForwardStage stage(args, blockIdx.x, blockIdx.y, blockIdx.z, t);
  float acc[kMicro][kMicro] = {};
  block_gemm(stage, tiles, t, acc);
  stage.finish(acc, t / kThreadsPerRow, t % kThreadsPerRow, args.y);
}

__global__ void __launch_bounds__(kThreads) local2d_backward_data_kernel(const BackwardArgs args) {
  __shared__ Tiles tiles;
  const int t = threadIdx.x;
  BackwardStage stage(args, blockIdx.x, blockIdx.y, blockIdx.z, t);
  float acc[kMicro][kMicro] = {};
  block_gemm(stage, tiles, t, acc);
  stage.finish(acc, t / kThreadsPerRow, t % kThreadsPerRow, args.dx);
}

__global__ void __launch_bounds__(kThreads) local2d_update_kernel(const UpdateArgs args) {
  __shared__ Tiles tiles;
  const int t = threadIdx.x;
  UpdateStage stage(args, blockIdx.x, blockIdx.y, blockIdx.z, t);
  float acc[kMicro][kMicro] = {};
  block_gemm(stage, tiles, t, acc);
  stage.finish(acc, t / kThreadsPerRow, t % kThreadsPerRow, args.w, args.decay, args.step);
}

// gridDim.y and gridDim.z are limited to 65535 blocks.
dim3 make_grid(long long x, int y, int z, const char* op) {
  BP_CHECK(x <= 0x7fffffffLL && y <= 65535 && z <= 65535,
           op << ": geometry too large for one launch (grid " << x << " x " << y << " x " << z
              << ")");
  return dim3(static_cast<unsigned>(x), static_cast<unsigned>(y), static_cast<unsigned>(z));
}

#undef BP_LC_HD
#undef BP_LC_UNROLL

}  // namespace

void local2d_forward(const float* x, const float* w, float* y, const Conv2dGeometry& g,
                     cudaStream_t stream) {
  if (g.batch <= 0 || g.positions() <= 0 || g.out_c <= 0) return;  // y is empty
  const dim3 grid = make_grid(g.positions(), ceil_div(g.batch, kTile), ceil_div(g.out_c, kTile),
                              "local2d_forward");
  BP_LAUNCH(local2d_forward_kernel, grid, kThreads, 0, stream, ForwardArgs{x, w, y, g});
  BP_CUDA_CHECK(cudaPeekAtLastError());
}

void local2d_backward_data(const float* dy, const float* w, float* dx, const Conv2dGeometry& g,
                           cudaStream_t stream) {
  // dx is written everywhere, zeros included, even when no position or filter exists.
  if (g.batch <= 0 || g.in_h <= 0 || g.in_w <= 0 || g.in_c <= 0) return;  // dx is empty
  const dim3 grid =
      make_grid(static_cast<long long>(g.in_h) * g.in_w, ceil_div(g.batch, kTile),
                ceil_div(g.in_c, kTile), "local2d_backward_data");
  BP_LAUNCH(local2d_backward_data_kernel, grid, kThreads, 0, stream, BackwardArgs{dy, w, dx, g});
  BP_CUDA_CHECK(cudaPeekAtLastError());
}

void local2d_update(float* w, const float* dy, const float* x, const Conv2dGeometry& g,
                    float decay, float step, cudaStream_t stream) {
  // No weights, or no samples (the CPU backend leaves the weights untouched then too).
  if (g.batch <= 0 || g.positions() <= 0 || g.out_c <= 0 || g.patch_size() <= 0) return;
  const dim3 grid = make_grid(g.positions(), ceil_div(g.out_c, kTile),
                              ceil_div(g.patch_size(), kTile), "local2d_update");
  BP_LAUNCH(local2d_update_kernel, grid, kThreads, 0, stream, UpdateArgs{w, dy, x, g, decay, step});
  BP_CUDA_CHECK(cudaPeekAtLastError());
}

}  // namespace bp::cuda
