// The locally connected GPU kernels, checked without a GPU: this host program includes
// kernels/cuda/local2d.cu, runs every block's 64 threads phase by phase between the barriers
// (fetch, stage into shared memory, multiply, finish) exactly as the kernels order them, and
// compares forward, backward-data and the in-place update with float64 references written
// independently of patch_source. It checks the tiling's index math, that every shared-memory
// cell is staged each step and that every output is written; it cannot check real concurrency
// (tests/gpu does, on a GPU). Tolerance: 2e-6 of the sum of |terms| (float32 accumulation).
#include "cuda/local2d.cu"
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>
#include <limits>

namespace bp { namespace detail {
void throw_error(const char*, int, const std::string& m) { throw std::runtime_error(m); }
}}
namespace bp::cuda {
void fail_cuda(const char*, cudaError_t, const char*, int) { std::abort(); }
}

using namespace bp;
using namespace bp::cuda;

static int failures = 0;

template <class Stage, class Args, class Finish>
void emulate(const Args& args, dim3 grid, Finish finish) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        std::vector<Stage> st;
        for (int t = 0; t < kThreads; ++t) st.emplace_back(args, bx, by, bz, t);
        static Tiles tiles;
        float a[kThreads][4][4] = {};
        const int steps = st[0].steps();
        for (int t = 0; t < kThreads; ++t)
          if (st[t].steps() != steps) { printf("non-uniform steps\n"); failures++; return; }
        if (steps > 0) for (auto& s : st) s.fetch(0);
        for (int s = 0; s < steps; ++s) {
          for (int r = 0; r < kTileK; ++r)
            for (int c = 0; c < kStride; ++c) tiles.a[r][c] = tiles.b[r][c] = nan;
          for (auto& x : st) x.stash(tiles);
          for (int r = 0; r < kTileK; ++r)
            for (int c = 0; c < kTile; ++c)
              if (std::isnan(tiles.a[r][c]) || std::isnan(tiles.b[r][c])) {
                printf("unstaged cell %d %d\n", r, c); failures++; return;
              }
          if (s + 1 < steps) for (auto& x : st) x.fetch(s + 1);
          for (int t = 0; t < kThreads; ++t) multiply_tile(tiles, t / kThreadsPerRow, t % kThreadsPerRow, a[t]);
        }
        for (int t = 0; t < kThreads; ++t) finish(st[t], a[t], t / kThreadsPerRow, t % kThreadsPerRow);
      }
}

static double patch_val(const std::vector<float>& x, const Conv2dGeometry& g, int b, int oy, int ox, int k) {
  // independent of patch_source: decode (ky, kx, c) by hand
  const int c = k % g.in_c, kx = (k / g.in_c) % g.kernel_w, ky = k / (g.in_c * g.kernel_w);
  const int iy = oy * g.stride_h - g.pad_top + ky, ix = ox * g.stride_w - g.pad_left + kx;
  if (iy < 0 || iy >= g.in_h || ix < 0 || ix >= g.in_w) return 0;
  return x[((size_t(b) * g.in_h + iy) * g.in_w + ix) * g.in_c + c];
}

static bool close(const char* what, const std::vector<float>& got, const std::vector<double>& want, const std::vector<double>& mag) {
  double worst = 0; size_t at = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double e = std::fabs(got[i] - want[i]) / (1e-30 + mag[i]);
    if (!(e <= worst)) { worst = e; at = i; }
    if (std::isnan(got[i])) { worst = INFINITY; at = i; break; }
  }
  const bool ok = worst < 2e-6;
  printf("  %s worst err/sum|terms| %.3g\n", what, worst);
  if (!ok) { printf("  %s MISMATCH at %zu: got %g want %g (rel %g)\n", what, at, got[at], want[at], worst); failures++; }
  return ok;
}

static void run_case(int batch, int ih, int iw, int ic, int f, int kh, int kw, int sh, int sw, bool same) {
  Conv2dGeometry g = make_conv_geometry(ih, iw, ic, f, kh, kw, sh, sw, same);
  g.batch = batch;
  const int P = g.positions(), K = g.patch_size(), O = g.out_c;
  printf("case b%d %dx%dx%d f%d k%dx%d s%dx%d %s -> %dx%d P%d K%d\n", batch, ih, iw, ic, f, kh, kw, sh, sw,
         same ? "same" : "valid", g.out_h, g.out_w, P, K);
  std::mt19937 rng(batch * 131 + ih * 7 + ic);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> x(size_t(batch) * ih * iw * ic), w(size_t(P) * O * K), dy(size_t(batch) * P * O);
  for (auto& v : x) v = u(rng);
  for (auto& v : w) v = u(rng);
  for (auto& v : dy) v = u(rng);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // forward
  if (batch > 0 && P > 0 && O > 0) {
    std::vector<float> y(dy.size(), nan);
    std::vector<double> want(dy.size(), 0), mag(dy.size(), 0);
    for (int b = 0; b < batch; ++b) for (int p = 0; p < P; ++p) for (int o = 0; o < O; ++o) {
      double s = 0, m = 0;
      for (int k = 0; k < K; ++k) { const double t = double(w[(size_t(p) * O + o) * K + k]) * patch_val(x, g, b, p / g.out_w, p % g.out_w, k); s += t; m += std::fabs(t); }
      want[(size_t(b) * P + p) * O + o] = s; mag[(size_t(b) * P + p) * O + o] = m;
    }
    ForwardArgs args{x.data(), w.data(), y.data(), g};
    emulate<ForwardStage>(args, dim3(P, ceil_div(batch, kTile), ceil_div(O, kTile)),
                          [&](const ForwardStage& s, float (&a)[4][4], int tm, int tn) { s.finish(a, tm, tn, y.data()); });
    close("forward", y, want, mag);
  }
  // backward data
  if (batch > 0 && ih > 0 && iw > 0 && ic > 0) {
    std::vector<float> dx(x.size(), nan);
    std::vector<double> want(x.size(), 0), mag(x.size(), 0);
    for (int b = 0; b < batch; ++b) for (int p = 0; p < P; ++p) for (int k = 0; k < K; ++k) {
      const int oy = p / g.out_w, ox = p % g.out_w;
      const int c = k % ic, kx = (k / ic) % kw, ky = k / (ic * kw);
      const int iy = oy * sh - g.pad_top + ky, ix = ox * sw - g.pad_left + kx;
      if (iy < 0 || iy >= ih || ix < 0 || ix >= iw) continue;
      double s = 0, m = 0;
      for (int o = 0; o < O; ++o) { const double t = double(dy[(size_t(b) * P + p) * O + o]) * w[(size_t(p) * O + o) * K + k]; s += t; m += std::fabs(t); }
      want[((size_t(b) * ih + iy) * iw + ix) * ic + c] += s; mag[((size_t(b) * ih + iy) * iw + ix) * ic + c] += m;
    }
    BackwardArgs args{dy.data(), w.data(), dx.data(), g};
    emulate<BackwardStage>(args, dim3(ih * iw, ceil_div(batch, kTile), ceil_div(ic, kTile)),
                           [&](const BackwardStage& s, float (&a)[4][4], int tm, int tn) { s.finish(a, tm, tn, dx.data()); });
    close("backward_data", dx, want, mag);
  }
  // update
  if (batch > 0 && P > 0 && O > 0 && K > 0) {
    const float decay = 0.999f, step = 0.01f;
    std::vector<float> w2 = w;
    std::vector<double> want(w.size()), mag(w.size());
    for (int p = 0; p < P; ++p) for (int o = 0; o < O; ++o) for (int k = 0; k < K; ++k) {
      double s = 0, m = 0;
      for (int b = 0; b < batch; ++b) { const double t = double(dy[(size_t(b) * P + p) * O + o]) * patch_val(x, g, b, p / g.out_w, p % g.out_w, k); s += t; m += std::fabs(t); }
      const size_t i = (size_t(p) * O + o) * K + k;
      want[i] = double(decay) * w[i] - double(step) * s; mag[i] = std::fabs(double(decay) * w[i]) + double(step) * m;
    }
    UpdateArgs args{w2.data(), dy.data(), x.data(), g, decay, step};
    emulate<UpdateStage>(args, dim3(P, ceil_div(O, kTile), ceil_div(K, kTile)),
                         [&](const UpdateStage& s, float (&a)[4][4], int tm, int tn) { s.finish(a, tm, tn, w2.data(), decay, step); });
    close("update", w2, want, mag);
  }
}

int main() {
  run_case(5, 32, 32, 3, 32, 3, 3, 1, 1, false);   // CIFAR loccon L1
  run_case(3, 30, 30, 32, 32, 3, 3, 2, 2, false);  // CIFAR loccon L2
  run_case(33, 8, 8, 3, 32, 3, 3, 1, 1, false);    // two batch tiles
  run_case(34, 11, 13, 1, 37, 5, 5, 1, 1, true);   // in_c 1, odd, same, two out tiles
  run_case(7, 7, 9, 3, 5, 3, 3, 2, 2, true);       // same, stride 2
  run_case(4, 9, 8, 2, 6, 4, 4, 2, 2, true);       // even kernel, same
  run_case(3, 10, 10, 40, 9, 2, 2, 3, 3, false);   // uncovered pixels, two channel tiles
  run_case(2, 9, 7, 5, 3, 1, 1, 2, 2, false);      // kernel 1 stride 2
  run_case(6, 12, 10, 3, 8, 3, 2, 2, 1, true);     // rectangular kernel/stride
  run_case(3, 6, 5, 4, 7, 5, 3, 3, 2, true);       // kernel > stride, same, rect
  run_case(2, 2, 2, 3, 4, 3, 3, 1, 1, false);      // in < kernel: no positions
  run_case(1, 14, 14, 64, 33, 3, 3, 1, 1, true);   // 64 channels, batch 1
  printf(failures ? "FAILED %d\n" : "ALL OK\n", failures);
  return failures != 0;
}
