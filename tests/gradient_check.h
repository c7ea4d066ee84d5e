// Finite-difference checking of a float64 Net's in-place update: run one step with learning
// rate lr, read the update (W_before - W_after) / lr, and compare it with central differences
// of the loss (Caffe-style: relative tolerance, h small enough for float64).
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "model/net.h"

namespace bp::test {

inline std::vector<std::vector<double>> snapshot(Net& net) {
  std::vector<std::vector<double>> out;
  for (const NamedParam& p : net.params())
    out.emplace_back(p.tensor->data<double>(), p.tensor->data<double>() + p.tensor->numel());
  return out;
}

inline double l2_penalty(Net& net, const std::function<double(const std::string&)>& l2_of) {
  double sum = 0;
  for (const NamedParam& p : net.params()) {
    const double l2 = l2_of(p.name);
    for (int64_t i = 0; i < p.tensor->numel(); ++i) sum += l2 * p.tensor->data<double>()[i] * p.tensor->data<double>()[i];
  }
  return sum;
}

// Relative tolerance 1e-6 with h = 1e-6 (float64 central differences: truncation error
// ~h^2 * f''' and rounding ~1e-16 / h, both far below it). Returns the number of elements checked.
inline int expect_update_is_gradient(Net& trained, Net& probe,
                                     const std::vector<std::vector<double>>& before, double lr,
                                     const std::function<double()>& loss, double tolerance = 1e-6) {
  const auto after = snapshot(trained);
  auto probe_params = probe.params();
  const double h = 1e-6;
  int checked = 0;
  for (size_t p = 0; p < before.size(); ++p) {
    double* w = probe_params[p].tensor->data<double>();
    for (size_t i = 0; i < before[p].size(); ++i) {
      const double saved = w[i];
      w[i] = saved + h;
      const double up = loss();
      w[i] = saved - h;
      const double down = loss();
      w[i] = saved;
      const double numeric = (up - down) / (2 * h);
      const double analytic = (before[p][i] - after[p][i]) / lr;
      EXPECT_NEAR(analytic, numeric, tolerance * std::max(1.0, std::abs(numeric)))
          << probe_params[p].name << "[" << i << "]";
      ++checked;
    }
  }
  return checked;
}

}  // namespace bp::test
