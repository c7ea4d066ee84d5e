// Dense algebra and element-wise ops of the CUDA backend against the CPU reference: GEMM in
// every transpose combination (odd sizes, alpha/beta), the bias ops, the BrainProp output
// layer's row gather (plain and ReLU-gated) and scatter update with repeated units, ReLU and
// its feedback gate, and fill for every dtype.
#include <string>
#include <tuple>
#include <utility>

#include "gpu_parity.h"

namespace bp::test {
namespace {

std::string gemm_name(bool ta, bool tb, double alpha, double beta) {
  return std::string("gemm ") + (ta ? "A^T" : "A") + " " + (tb ? "B^T" : "B") + " alpha " +
         std::to_string(alpha) + " beta " + std::to_string(beta);
}

// C = alpha op(A) op(B) + beta C on both backends; C poisoned when beta is 0 (cuBLAS must not
// read it then), the same random C on both otherwise.
// Tolerance: 1e-4 relative, floored at the output's rms. Each output is a K-term float32 dot
// product; cuBLAS and OpenBLAS order (and fuse) the terms differently, which moves a result by
// up to ~sqrt(K) ulps of the terms' size, i.e. ~1e-6 of the rms for K = 129 and ~1e-5 for
// K = 1500. A wrong index or a dropped term is far outside, and so is TF32 (inputs rounded
// to 10 mantissa bits, ~5e-4 each), which the FP32 math mode must not use.
class GpuGemm : public GpuParity {
 protected:
  void run(int64_t m, int64_t n, int64_t k, bool ta, bool tb, double alpha, double beta,
           uint32_t seed) {
    const std::string what = gemm_name(ta, tb, alpha, beta) + " m " + std::to_string(m) + " n " +
                             std::to_string(n) + " k " + std::to_string(k);
    auto [ca, ga] = random_pair(ta ? Shape{k, m} : Shape{m, k}, seed);
    auto [cb, gb] = random_pair(tb ? Shape{n, k} : Shape{k, n}, seed + 1);
    Tensor cc, gc;
    if (beta == 0.0)
      std::tie(cc, gc) = outputs({m, n});
    else
      std::tie(cc, gc) = random_pair({m, n}, seed + 2);
    cpu_->gemm(ta, tb, alpha, ca, cb, beta, cc);
    gpu_->gemm(ta, tb, alpha, ga, gb, beta, gc);
    expect_close(cc, gc, 1e-4, cpu_rms(cc), what);
  }
};

TEST_F(GpuGemm, AllTransposesOddSizesAlphaBeta) {
  uint32_t seed = 100;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      run(37, 53, 129, ta, tb, 1.0, 0.0, seed += 3);     // C poisoned: beta 0 never reads it
      run(37, 53, 129, ta, tb, -0.37, 0.61, seed += 3);  // C random, the same on both
      run(37, 53, 129, ta, tb, 2.5, 1.0, seed += 3);     // accumulate (beta 1)
    }
}

TEST_F(GpuGemm, DenseLayerShapesLongReductions) {
  // The dense net's GEMMs at batch 64: forward y = x W^T, feedback dx = dy W and the update
  // W = decay W - step dy^T x written into W (K up to 1500).
  run(64, 1000, 1500, false, true, 1.0, 0.0, 7);
  run(64, 1500, 1000, false, false, 1.0, 0.0, 8);
  run(1000, 1500, 64, true, false, -0.1 / 64, 0.999, 9);
  // Degenerate sizes: a single row / column / inner dimension.
  run(1, 53, 129, false, true, 1.0, 0.0, 10);
  run(37, 1, 129, true, false, 1.0, 0.0, 11);
  run(37, 53, 1, false, false, 0.5, 0.25, 12);
}

TEST_F(GpuParity, AddRowBiasOverEveryLeadingElement) {
  // y viewed as [rows, bias.numel()]: a rank-3 y with the bias on its last axis.
  auto [cy, gy] = random_pair({13, 4, 17}, 1);
  auto [cb, gb] = random_pair({17}, 2);
  cpu_->add_row_bias(cy, cb);
  gpu_->add_row_bias(gy, gb);
  // One float addition per element, identically rounded on both: exact up to 1e-6.
  expect_close(cy, gy, 1e-6, 1e-6, "add_row_bias");
}

TEST_F(GpuParity, UpdateBiasSumsEveryRow) {
  // rows 300 (more than one 256-row chunk of the GPU's column sums) x 17 columns, and
  // 3 rows x 1000 columns (many 32-column tiles).
  using Case = std::pair<int64_t, int64_t>;
  for (auto [rows, cols] : {Case{300, 17}, Case{3, 1000}}) {
    const std::string what = "update_bias " + std::to_string(rows) + "x" + std::to_string(cols);
    auto [cb, gb] = random_pair({cols}, uint32_t(rows + cols));
    auto [cd, gd] = random_pair({rows, cols}, uint32_t(rows * cols));
    cpu_->update_bias(cb, cd, 0.999, 0.05);
    gpu_->update_bias(gb, gd, 0.999, 0.05);
    // The CPU sums the column in float, the GPU in double: the sums differ by up to ~rows ulps
    // of their size (~1e-4 relative to the sum for 300 rows); times step 0.05 that is < 1e-5 of
    // the O(1) bias. 1e-4 relative (floor 0.1) leaves room and still sees one row missing
    // (0.05 * |dy| ~ 2.5e-2).
    expect_close(cb, gb, 1e-4, 0.1, what);
  }
}

TEST_F(GpuParity, CountNonFiniteAddsIntoItsSlot) {
  // 70000 values (274 of the reduction's 256-row chunks) with NaN, +Inf and -Inf planted, one
  // in the last element; the counts start at 5 in every slot: the op adds into its own slot.
  std::vector<float> v = random_floats(70000, 41);
  for (int64_t i : {int64_t(0), int64_t(255), int64_t(256), int64_t(40000), int64_t(69999)})
    v[size_t(i)] = std::nanf("");
  v[1000] = INFINITY;
  v[1001] = -INFINITY;
  v[1002] = 3.4e38f;  // large but finite
  auto [ct, gt] = both({70000}, v);
  auto [cc, gc] = both({3}, std::vector<double>{5, 5, 5});
  cpu_->count_nonfinite(ct, cc, 1);
  gpu_->count_nonfinite(gt, gc, 1);
  EXPECT_EQ(host<double>(*cpu_, cc), (std::vector<double>{5, 12, 5}));
  EXPECT_EQ(host<double>(*gpu_, gc), (std::vector<double>{5, 12, 5}));
}

// The BrainProp output layer's operands: w [units, cols], per-sample unit index (units chosen
// several times, one unit never) and error scale.
struct SelectedRows {
  static constexpr int64_t kUnits = 10, kCols = 37, kRows = 50;
  std::vector<int32_t> index;
  std::vector<float> scale;
  explicit SelectedRows(uint32_t seed) {
    index = random_ints(kRows, seed, 0, kUnits - 1);  // unit kUnits-1 never chosen
    for (int r = 0; r < 8; ++r) index[size_t(r * 5)] = 3;       // unit 3 chosen at least 8 times
    scale = random_floats(kRows, seed + 1, -1.f, 1.f);
  }
};

TEST_F(GpuParity, GatherRowsScaled) {
  const SelectedRows sel(21);
  auto [cw, gw] = random_pair({SelectedRows::kUnits, SelectedRows::kCols}, 22);
  auto [ci, gi] = both({SelectedRows::kRows}, sel.index);
  auto [cs, gs] = both({SelectedRows::kRows}, sel.scale);
  auto [co, go] = outputs({SelectedRows::kRows, SelectedRows::kCols});
  cpu_->gather_rows_scaled(cw, ci, cs, co);
  gpu_->gather_rows_scaled(gw, gi, gs, go);
  // One product per element, identically rounded: exact up to 1e-6 (floor for the tiny ones).
  expect_close(co, go, 1e-6, 1e-6, "gather_rows_scaled");
}

TEST_F(GpuParity, GatherRowsScaledGatedByTheReluBelow) {
  const SelectedRows sel(31);
  auto [cw, gw] = random_pair({SelectedRows::kUnits, SelectedRows::kCols}, 32);
  auto [ci, gi] = both({SelectedRows::kRows}, sel.index);
  auto [cs, gs] = both({SelectedRows::kRows}, sel.scale);
  // A ReLU output: about half the entries exactly zero.
  std::vector<float> y = random_floats(SelectedRows::kRows * SelectedRows::kCols, 33);
  for (float& v : y) v = v > 0 ? v : 0.f;
  auto [cy, gy] = both({SelectedRows::kRows, SelectedRows::kCols}, y);
  auto [co, go] = outputs({SelectedRows::kRows, SelectedRows::kCols});
  cpu_->gather_rows_scaled_gated(cw, ci, cs, cy, co);
  gpu_->gather_rows_scaled_gated(gw, gi, gs, gy, go);
  expect_close(co, go, 1e-6, 1e-6, "gather_rows_scaled_gated");
  // The gate really closed: every entry where y is 0 is exactly 0 on the GPU.
  const std::vector<float> g = host<float>(*gpu_, go);
  int64_t closed = 0;
  for (size_t i = 0; i < y.size(); ++i)
    if (y[i] == 0.f) {
      ++closed;
      EXPECT_EQ(g[i], 0.f) << "element " << i;
    }
  EXPECT_GT(closed, int64_t(y.size()) / 4);
}

TEST_F(GpuParity, ScatterUpdateRowsWithRepeatedUnits) {
  const SelectedRows sel(41);
  auto [cw, gw] = random_pair({SelectedRows::kUnits, SelectedRows::kCols}, 42);
  auto [ci, gi] = both({SelectedRows::kRows}, sel.index);
  auto [cs, gs] = both({SelectedRows::kRows}, sel.scale);
  auto [cx, gx] = random_pair({SelectedRows::kRows, SelectedRows::kCols}, 43);
  cpu_->scatter_update_rows(cw, ci, cs, cx, 0.999, 0.05);
  gpu_->scatter_update_rows(gw, gi, gs, gx, 0.999, 0.05);
  // The CPU subtracts each sample's step * scale * x in turn, the GPU sums the samples first:
  // different rounding of up to ~8 terms of size <= 0.05 on an O(1) weight, ~1e-7 absolute.
  // 1e-5 relative with a 0.1 floor (1e-6 absolute near zero); one sample missing or counted
  // twice moves a weight by ~0.05 * 0.25.
  expect_close(cw, gw, 1e-5, 0.1, "scatter_update_rows");
  // The never-chosen unit only decays.
  const std::vector<float> g = host<float>(*gpu_, gw);
  const std::vector<float> w0 = random_floats(SelectedRows::kUnits * SelectedRows::kCols, 42);
  for (int64_t c = 0; c < SelectedRows::kCols; ++c) {
    const size_t i = size_t((SelectedRows::kUnits - 1) * SelectedRows::kCols + c);
    EXPECT_FLOAT_EQ(g[i], 0.999f * w0[i]) << "column " << c;
  }
}

TEST_F(GpuParity, ScatterUpdateBiasWithRepeatedUnits) {
  const SelectedRows sel(51);
  auto [cb, gb] = random_pair({SelectedRows::kUnits}, 52);
  auto [ci, gi] = both({SelectedRows::kRows}, sel.index);
  auto [cs, gs] = both({SelectedRows::kRows}, sel.scale);
  cpu_->scatter_update_bias(cb, ci, cs, 0.999, 0.05);
  gpu_->scatter_update_bias(gb, gi, gs, 0.999, 0.05);
  // As scatter_update_rows (sequential subtraction vs a sum first): 1e-5 relative, floor 0.1.
  expect_close(cb, gb, 1e-5, 0.1, "scatter_update_bias");
}

TEST_F(GpuParity, ReluForward) {
  const int64_t n = 1001;  // not a multiple of any vector width or block
  std::vector<float> x = random_floats(n, 61);
  x[0] = 0.f;
  x[1] = -0.f;
  auto [cx, gx] = both({n}, x);
  auto [cy, gy] = outputs({n});
  cpu_->relu_forward(cx, cy);
  gpu_->relu_forward(gx, gy);
  expect_close(cy, gy, 0.0, 1.0, "relu_forward");  // a selection, no arithmetic: exact
}

TEST_F(GpuParity, ReluFeedbackGatesByTheOutput) {
  const int64_t n = 1001;
  std::vector<float> y = random_floats(n, 71);
  for (float& v : y) v = v > 0 ? v : 0.f;
  auto [cy, gy] = both({n}, y);
  auto [cd, gd] = random_pair({n}, 72);
  auto [cx, gx] = outputs({n});
  cpu_->relu_feedback(cd, cy, cx);
  gpu_->relu_feedback(gd, gy, gx);
  expect_close(cx, gx, 0.0, 1.0, "relu_feedback");  // a selection: exact
  // In place (dx = dy), as the ReLU layer calls it.
  cpu_->relu_feedback(cd, cy, cd);
  gpu_->relu_feedback(gd, gy, gd);
  expect_close(cd, gd, 0.0, 1.0, "relu_feedback in place");
}

TEST_F(GpuParity, FillEveryDtype) {
  const int64_t n = 100003;
  {
    Tensor t = gpu_->empty({n}, DType::F32);
    gpu_->fill(t, 0.25);
    expect_equal_values(host<float>(*gpu_, t), std::vector<float>(size_t(n), 0.25f), "fill f32");
  }
  {
    Tensor t = gpu_->empty({n}, DType::F64);
    gpu_->fill(t, 1.0 / 3.0);
    expect_equal_values(host<double>(*gpu_, t), std::vector<double>(size_t(n), 1.0 / 3.0),
                        "fill f64");
  }
  {
    Tensor t = gpu_->empty({n}, DType::I32);
    gpu_->fill(t, -123456.0);
    expect_equal_values(host<int32_t>(*gpu_, t), std::vector<int32_t>(size_t(n), -123456),
                        "fill i32");
  }
  {
    Tensor t = gpu_->empty({n}, DType::U8);
    gpu_->fill(t, 200.0);
    expect_equal_values(host<uint8_t>(*gpu_, t), std::vector<uint8_t>(size_t(n), 200), "fill u8");
  }
  {
    // A view fills only its rows.
    Tensor t = gpu_->empty({10, 7}, DType::F32);
    gpu_->fill(t, 1.0);
    Tensor head = t.rows(3);
    gpu_->fill(head, 2.0);
    std::vector<float> want(70, 1.f);
    std::fill(want.begin(), want.begin() + 21, 2.f);
    expect_equal_values(host<float>(*gpu_, t), want, "fill of a view");
  }
}

}  // namespace
}  // namespace bp::test
