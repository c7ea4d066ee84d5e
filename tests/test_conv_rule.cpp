// BrainProp through convolutional and locally connected nets without batch norm: the
// engine's update equals the paper's explicit rule written out with plain loops, and an
// independent direct (loop) convolution: feedback phi is one-hot at the output, a row of the
// output weights one layer down, and below it the transposed connectivity applied to
// phi * g; dW = lr * delta * phi * g * presynaptic activity.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "model/net.h"

namespace bp {
namespace {

constexpr int B = 3, H = 6, W = 5, C = 2, F1 = 3, F2 = 2, K2 = 2, CLASSES = 4;

ModelSpec conv_then_local() {
  LayerSpec c1;
  c1.type = "conv2d";
  c1.filters = F1;
  c1.padding = "same";
  c1.init_std = 0.5;  // kernel 3x3, stride 1
  LayerSpec l2;
  l2.type = "local2d";
  l2.filters = F2;
  l2.kernel_h = l2.kernel_w = K2;
  l2.stride_h = l2.stride_w = 2;
  l2.padding = "valid";
  l2.init_std = 0.5;
  ModelSpec spec;
  spec.name = "conv_local";
  spec.layers = {c1, {"relu"}, l2, {"relu"}, {"flatten"}};
  spec.output = {"dense", 0, false, 0.5, 0};
  return spec;
}

TEST(BrainPropRule, ExplicitRuleThroughConvAndLocallyConnectedLayers) {
  auto be = make_cpu_backend(2);
  const ModelSpec spec = conv_then_local();
  Net net(spec, {H, W, C}, CLASSES, *be, B, DType::F64, 21);
  auto params = net.params();
  ASSERT_EQ(params.size(), 3u);
  const std::vector<double> w1(params[0].tensor->data<double>(), params[0].tensor->data<double>() + params[0].tensor->numel());
  const std::vector<double> w2(params[1].tensor->data<double>(), params[1].tensor->data<double>() + params[1].tensor->numel());
  const std::vector<double> w3(params[2].tensor->data<double>(), params[2].tensor->data<double>() + params[2].tensor->numel());

  std::mt19937_64 gen(4);
  std::uniform_real_distribution<double> unit(0, 1);
  Tensor x = be->empty({B, H, W, C}, DType::F64);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<double>()[i] = unit(gen);
  std::vector<int32_t> y(B);
  for (auto& v : y) v = int32_t(gen() % CLASSES);
  Tensor labels = be->empty({B}, DType::I32), action = be->empty({B}, DType::I32),
         err = be->empty({B}, DType::F64), stats = be->empty({kStatCount}, DType::F64);
  be->copy_from_host(labels, y.data());
  be->fill(stats, 0.0);
  be->brainprop_head(net.forward(x, true), labels, {0.4f, 3, 1}, action, err, stats);
  const double lr = 0.2;
  net.backward_selected(action, err, {lr, B});

  // Geometry: conv 'same' 3x3 stride 1 keeps HxW (pad 1); local 2x2 stride 2 'valid'.
  const int OH2 = (H - K2) / 2 + 1, OW2 = (W - K2) / 2 + 1, P2 = OH2 * OW2, KK2 = K2 * K2 * F1;
  auto X = [&](int b, int i, int j, int c) { return x.data<double>()[((b * H + i) * W + j) * C + c]; };
  std::vector<double> d1(w1.size(), 0), d2(w2.size(), 0), d3(w3.size(), 0);
  int gates_on = 0, gates_off = 0;
  for (int b = 0; b < B; ++b) {
    // Forward, directly.
    std::vector<double> a1(H * W * F1, 0), y1(H * W * F1);
    for (int i = 0; i < H; ++i)
      for (int j = 0; j < W; ++j)
        for (int f = 0; f < F1; ++f) {
          double s = 0;
          for (int ky = 0; ky < 3; ++ky)
            for (int kx = 0; kx < 3; ++kx)
              for (int c = 0; c < C; ++c) {
                const int ii = i + ky - 1, jj = j + kx - 1;
                if (ii >= 0 && ii < H && jj >= 0 && jj < W) s += w1[((f * 3 + ky) * 3 + kx) * C + c] * X(b, ii, jj, c);
              }
          a1[(i * W + j) * F1 + f] = s;
          y1[(i * W + j) * F1 + f] = s > 0 ? s : 0;
        }
    std::vector<double> a2(P2 * F2), y2(P2 * F2);
    for (int p = 0; p < P2; ++p)
      for (int f = 0; f < F2; ++f) {
        double s = 0;
        for (int ky = 0; ky < K2; ++ky)
          for (int kx = 0; kx < K2; ++kx)
            for (int c = 0; c < F1; ++c)
              s += w2[(p * F2 + f) * KK2 + (ky * K2 + kx) * F1 + c] *
                   y1[(((p / OW2) * 2 + ky) * W + (p % OW2) * 2 + kx) * F1 + c];
        a2[p * F2 + f] = s;
        y2[p * F2 + f] = s > 0 ? s : 0;
      }
    std::vector<double> a3(CLASSES, 0);
    for (int k = 0; k < CLASSES; ++k)
      for (int j = 0; j < P2 * F2; ++j) a3[k] += w3[k * P2 * F2 + j] * y2[j];
    const int s = action.data<int32_t>()[b];
    const double delta = (s == y[b] ? 1.0 : 0.0) - a3[s];
    const double scale = lr / B * delta;

    // Feedback: a row of the output weights at the LC units, then the LC connectivity.
    std::vector<double> phi2(w3.begin() + s * P2 * F2, w3.begin() + (s + 1) * P2 * F2);
    std::vector<double> phi1(H * W * F1, 0);
    for (int p = 0; p < P2; ++p)
      for (int f = 0; f < F2; ++f) {
        const double g = a2[p * F2 + f] > 0 ? 1 : 0;
        (g > 0 ? gates_on : gates_off)++;
        for (int ky = 0; ky < K2; ++ky)
          for (int kx = 0; kx < K2; ++kx)
            for (int c = 0; c < F1; ++c) {
              const int unit1 = (((p / OW2) * 2 + ky) * W + (p % OW2) * 2 + kx) * F1 + c;
              const int k = (ky * K2 + kx) * F1 + c;
              phi1[unit1] += w2[(p * F2 + f) * KK2 + k] * phi2[p * F2 + f] * g;
              d2[(p * F2 + f) * KK2 + k] += scale * phi2[p * F2 + f] * g * y1[unit1];
            }
      }
    for (int j = 0; j < P2 * F2; ++j) d3[s * P2 * F2 + j] += scale * y2[j];
    for (int i = 0; i < H; ++i)
      for (int j = 0; j < W; ++j)
        for (int f = 0; f < F1; ++f) {
          const double g = a1[(i * W + j) * F1 + f] > 0 ? 1 : 0;
          for (int ky = 0; ky < 3; ++ky)
            for (int kx = 0; kx < 3; ++kx)
              for (int c = 0; c < C; ++c) {
                const int ii = i + ky - 1, jj = j + kx - 1;
                if (ii >= 0 && ii < H && jj >= 0 && jj < W)
                  d1[((f * 3 + ky) * 3 + kx) * C + c] += scale * phi1[(i * W + j) * F1 + f] * g * X(b, ii, jj, c);
              }
        }
  }
  EXPECT_GT(gates_on, 0);
  EXPECT_GT(gates_off, 0) << "the gates must be exercised both ways";
  const std::vector<double>* before[] = {&w1, &w2, &w3};
  const std::vector<double>* change[] = {&d1, &d2, &d3};
  for (size_t p = 0; p < 3; ++p)
    for (size_t i = 0; i < before[p]->size(); ++i)
      EXPECT_NEAR(params[p].tensor->data<double>()[i] - (*before[p])[i], (*change[p])[i], 1e-12)
          << params[p].name << "[" << i << "]";
}

}  // namespace
}  // namespace bp
