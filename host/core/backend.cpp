#include <chrono>
#include <vector>

#include "core/backend.h"
#include "math/finite.h"

namespace bp {

int64_t Backend::timing_mark() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

GemmDims gemm_dims(bool ta, bool tb, const Tensor& a, const Tensor& b, const Tensor& c) {
  BP_CHECK(a.rank() == 2 && b.rank() == 2 && c.rank() == 2,
           "gemm needs 2-D tensors, got " << shape_string(a.shape()) << " "
                                          << shape_string(b.shape()) << " "
                                          << shape_string(c.shape()));
  const int64_t m = ta ? a.dim(1) : a.dim(0), k = ta ? a.dim(0) : a.dim(1);
  const int64_t kb = tb ? b.dim(1) : b.dim(0), n = tb ? b.dim(0) : b.dim(1);
  BP_CHECK(k == kb && c.dim(0) == m && c.dim(1) == n,
           "gemm shapes do not agree: A" << shape_string(a.shape()) << (ta ? "^T" : "") << " B"
                                        << shape_string(b.shape()) << (tb ? "^T" : "") << " C"
                                        << shape_string(c.shape()));
  return GemmDims{m, n, k};
}

void Backend::check_count_slot(const Tensor& counts, int64_t slot) {
  BP_CHECK(counts.dtype() == DType::F64 && slot >= 0 && slot < counts.numel(),
           "count_nonfinite: counts must be float64 with slot " << slot);
}

void Backend::count_nonfinite(const Tensor& t, Tensor& counts, int64_t slot) {
  check_count_slot(counts, slot);
  BP_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::F64,
           "count_nonfinite: " << dtype_name(t.dtype()) << " has no NaN");
  int64_t bad = 0;
  if (t.dtype() == DType::F32) {
    std::vector<float> v(static_cast<size_t>(t.numel()));
    copy_to_host(t, v.data());
    for (float x : v) bad += is_nonfinite(x) ? 1 : 0;
  } else {
    std::vector<double> v(static_cast<size_t>(t.numel()));
    copy_to_host(t, v.data());
    for (double x : v) bad += is_nonfinite(x) ? 1 : 0;
  }
  std::vector<double> host(static_cast<size_t>(counts.numel()));
  copy_to_host(counts, host.data());
  host[static_cast<size_t>(slot)] += double(bad);
  copy_from_host(counts, host.data());
}

double Backend::timing_elapsed_ms(int64_t from, int64_t to) { return double(to - from) * 1e-6; }

}  // namespace bp
