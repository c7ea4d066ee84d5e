// Cross-check of the cuDNN fake against an independent implementation: PyTorch's CPU
// convolutions in float64 (tests/emulator/torch_conv_reference.py). Geometries follow
// TensorFlow's 'same'/'valid' rules; an odd total padding ('same', odd pixel at the bottom/right)
// is expressed for cuDNN as explicit zero rows/columns appended to the input plus symmetric
// padding, and the gradient of those appended zeros is cropped away. Torch pads the original
// input asymmetrically instead, so the two sides do not share that trick.
//
// The test fails (it does not skip) when no Python with torch is found or the script fails.
// The interpreter: $BRAINPROP_PYTHON if set, else the first of `python3`, /usr/bin/python3
// that imports torch. The script: BRAINPROP_SOURCE_DIR (compile definition, else environment).
#include <cudnn.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "emu_test_helpers.h"

#pragma clang diagnostic ignored "-Wdeprecated-declarations"

namespace {

namespace fs = std::filesystem;
using emu_test::DeviceFloats;
using emu_test::Exact;

struct TfConv {
  const char* name;
  int batch, in_h, in_w, in_c, out_c, kernel_h, kernel_w, stride_h, stride_w;
  bool same;
};

// One TF axis: output size and the zeros added before/after the input.
struct Axis {
  int out = 0, before = 0, after = 0;
};
Axis tf_axis(int in, int kernel, int stride, bool same) {
  Axis a;
  if (same) {
    a.out = (in + stride - 1) / stride;
    const int total = std::max(0, (a.out - 1) * stride + kernel - in);
    a.before = total / 2;
    a.after = total - a.before;
  } else {
    a.out = (in - kernel) / stride + 1;
  }
  return a;
}

const TfConv kCases[] = {
    {"mnist_same_s1", 2, 28, 28, 1, 4, 3, 3, 1, 1, true},
    {"even_same_s2_asym", 2, 8, 10, 3, 5, 3, 3, 2, 2, true},  // pads 0/1 in both axes
    {"odd_valid_5x5", 3, 11, 9, 2, 3, 5, 5, 1, 1, false},
    {"odd_same_4x4_s2", 2, 13, 12, 4, 6, 4, 4, 2, 2, true},  // h: 1/2, w: 1/1
    {"same_2x2_s1", 1, 7, 7, 3, 2, 2, 2, 1, 1, true},        // 0/1
    {"odd_valid_s2", 2, 15, 15, 2, 3, 3, 3, 2, 2, false},
    {"cifar_same_s2", 4, 32, 32, 3, 8, 3, 3, 2, 2, true},    // 32 -> 16, pad 0 top, 1 bottom
    {"rect_same_mixed", 2, 9, 14, 2, 3, 3, 5, 1, 2, true},
    {"rect_5x3_same", 2, 10, 11, 3, 4, 5, 3, 1, 1, true},     // pads 2/2 rows, 1/1 columns
    {"rect_7x3_same_s2", 1, 12, 9, 2, 3, 7, 3, 2, 2, true},   // rows 2/3, columns 1/1
};

std::string python_ok(const std::string& python) {
  const std::string cmd = python + " -c \"import torch, numpy\" > /dev/null 2>&1";
  return std::system(cmd.c_str()) == 0 ? python : "";
}

std::string find_python() {
  if (const char* env = std::getenv("BRAINPROP_PYTHON")) return python_ok(env);
  for (const char* candidate : {"python3", "/usr/bin/python3"})
    if (!python_ok(candidate).empty()) return candidate;
  return "";
}

std::string script_path() {
#ifdef BRAINPROP_SOURCE_DIR
  const std::string root = BRAINPROP_SOURCE_DIR;
#else
  const char* env = std::getenv("BRAINPROP_SOURCE_DIR");
  const std::string root = env ? env : "";
#endif
  if (root.empty()) return "";
  return root + "/tests/emulator/torch_conv_reference.py";
}

void write_floats(const fs::path& path, const std::vector<float>& v) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * sizeof(float)));
  ASSERT_TRUE(out.good()) << path;
}

std::vector<double> read_doubles(const fs::path& path, size_t count) {
  std::vector<double> v(count);
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(v.data()), std::streamsize(count * sizeof(double)));
  EXPECT_TRUE(in.good() && in.gcount() == std::streamsize(count * sizeof(double))) << path;
  return v;
}

std::vector<Exact> expected_from(const fs::path& base, const std::string& what, size_t count) {
  const auto value = read_doubles(base.string() + "." + what, count);
  const auto magnitude = read_doubles(base.string() + "." + what + "_abs", count);
  std::vector<Exact> out(count);
  for (size_t i = 0; i < count; ++i) out[i] = Exact{value[i], magnitude[i]};
  return out;
}

// The case through the cuDNN fake (NHWC/KRSC, FP32 math): y, dx, dw.
struct FakeResults {
  std::vector<float> y, dx, dw;
};

void run_fake(const TfConv& c, const Axis& ah, const Axis& aw, const std::vector<float>& x,
              const std::vector<float>& w, const std::vector<float>& dy, FakeResults* out) {
  const int extra_h = ah.after - ah.before, extra_w = aw.after - aw.before;  // 0 or 1
  const int xh = c.in_h + extra_h, xw = c.in_w + extra_w;
  std::vector<float> xe(size_t(c.batch) * xh * xw * c.in_c, 0.f);  // x with zeros appended
  for (int n = 0; n < c.batch; ++n)
    for (int h = 0; h < c.in_h; ++h)
      for (int ww = 0; ww < c.in_w; ++ww)
        for (int ch = 0; ch < c.in_c; ++ch)
          xe[((size_t(n) * xh + h) * xw + ww) * c.in_c + ch] =
              x[((size_t(n) * c.in_h + h) * c.in_w + ww) * c.in_c + ch];

  cudnnHandle_t handle = nullptr;
  ASSERT_EQ(cudnnCreate(&handle), CUDNN_STATUS_SUCCESS);
  cudnnTensorDescriptor_t xd = nullptr, yd = nullptr;
  cudnnFilterDescriptor_t wd = nullptr;
  cudnnConvolutionDescriptor_t cd = nullptr;
  ASSERT_EQ(cudnnCreateTensorDescriptor(&xd), CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnCreateTensorDescriptor(&yd), CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnCreateFilterDescriptor(&wd), CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnCreateConvolutionDescriptor(&cd), CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnSetTensor4dDescriptor(xd, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, c.batch, c.in_c, xh, xw), CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnSetTensor4dDescriptor(yd, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, c.batch, c.out_c, ah.out, aw.out), CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnSetFilter4dDescriptor(wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, c.out_c, c.in_c, c.kernel_h, c.kernel_w), CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnSetConvolution2dDescriptor(cd, ah.before, aw.before, c.stride_h, c.stride_w, 1, 1,
                                            CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
            CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnSetConvolutionMathType(cd, CUDNN_FMA_MATH), CUDNN_STATUS_SUCCESS);
  int n = 0, k = 0, oh = 0, ow = 0;
  ASSERT_EQ(cudnnGetConvolution2dForwardOutputDim(cd, xd, wd, &n, &k, &oh, &ow), CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(oh, ah.out) << c.name;
  ASSERT_EQ(ow, aw.out) << c.name;

  size_t fwd_bytes = 0, data_bytes = 0, filter_bytes = 0;
  const auto fwd_algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
  const auto data_algo = CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
  const auto filter_algo = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1;
  ASSERT_EQ(cudnnGetConvolutionForwardWorkspaceSize(handle, xd, wd, cd, yd, fwd_algo, &fwd_bytes), CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnGetConvolutionBackwardDataWorkspaceSize(handle, wd, yd, cd, xd, data_algo, &data_bytes), CUDNN_STATUS_SUCCESS);
  ASSERT_EQ(cudnnGetConvolutionBackwardFilterWorkspaceSize(handle, xd, yd, cd, wd, filter_algo, &filter_bytes), CUDNN_STATUS_SUCCESS);
  const size_t ws_bytes = std::max({fwd_bytes, data_bytes, filter_bytes});
  DeviceFloats dxe_in(xe), dw_in(w), ddy(dy), dyo(size_t(c.batch) * ah.out * aw.out * c.out_c),
      ddx(xe.size()), ddw(w.size()), ws(ws_bytes / sizeof(float) + 1);
  const float one = 1.f, zero = 0.f;
  EXPECT_EQ(cudnnConvolutionForward(handle, &one, xd, dxe_in.get(), wd, dw_in.get(), cd, fwd_algo,
                                    ws.get(), fwd_bytes, &zero, yd, dyo.get()),
            CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(cudnnConvolutionBackwardData(handle, &one, wd, dw_in.get(), yd, ddy.get(), cd, data_algo,
                                         ws.get(), data_bytes, &zero, xd, ddx.get()),
            CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(cudnnConvolutionBackwardFilter(handle, &one, xd, dxe_in.get(), yd, ddy.get(), cd,
                                           filter_algo, ws.get(), filter_bytes, &zero, wd, ddw.get()),
            CUDNN_STATUS_SUCCESS);
  out->y = dyo.download();
  out->dw = ddw.download();
  const auto dxe = ddx.download();
  out->dx.assign(x.size(), 0.f);  // crop the gradient of the appended zeros away
  for (int b = 0; b < c.batch; ++b)
    for (int h = 0; h < c.in_h; ++h)
      for (int ww = 0; ww < c.in_w; ++ww)
        for (int ch = 0; ch < c.in_c; ++ch)
          out->dx[((size_t(b) * c.in_h + h) * c.in_w + ww) * c.in_c + ch] =
              dxe[((size_t(b) * xh + h) * xw + ww) * c.in_c + ch];
  cudnnDestroyConvolutionDescriptor(cd);
  cudnnDestroyFilterDescriptor(wd);
  cudnnDestroyTensorDescriptor(yd);
  cudnnDestroyTensorDescriptor(xd);
  cudnnDestroy(handle);
}

}  // namespace

TEST(CudnnFakeVsTorch, TfGeometriesMatchFloat64Torch) {
  const std::string python = find_python();
  ASSERT_FALSE(python.empty())
      << "no Python with torch and numpy (tried $BRAINPROP_PYTHON or python3, /usr/bin/python3); "
         "install python3-torch or set BRAINPROP_PYTHON";
  const std::string script = script_path();
  ASSERT_FALSE(script.empty()) << "BRAINPROP_SOURCE_DIR is not defined (compile definition or environment)";
  ASSERT_TRUE(fs::exists(script)) << script;

  std::string dir_template = (fs::temp_directory_path() / "bp_torch_conv_XXXXXX").string();
  ASSERT_NE(mkdtemp(dir_template.data()), nullptr);
  const fs::path dir = dir_template;

  struct Prepared {
    Axis h, w;
    std::vector<float> x, wt, dy;
  };
  std::vector<Prepared> prepared;
  std::ostringstream manifest;
  manifest << "{\"cases\": [";
  uint32_t seed = 1000;
  for (const TfConv& c : kCases) {
    Prepared p;
    p.h = tf_axis(c.in_h, c.kernel_h, c.stride_h, c.same);
    p.w = tf_axis(c.in_w, c.kernel_w, c.stride_w, c.same);
    p.x = emu_test::random_floats(size_t(c.batch) * c.in_h * c.in_w * c.in_c, seed++);
    p.wt = emu_test::random_floats(size_t(c.out_c) * c.kernel_h * c.kernel_w * c.in_c, seed++);
    p.dy = emu_test::random_floats(size_t(c.batch) * p.h.out * p.w.out * c.out_c, seed++);
    write_floats(dir / (std::string(c.name) + ".x"), p.x);
    write_floats(dir / (std::string(c.name) + ".w"), p.wt);
    write_floats(dir / (std::string(c.name) + ".dy"), p.dy);
    manifest << (prepared.empty() ? "" : ", ") << "{\"name\": \"" << c.name << "\", \"batch\": " << c.batch
             << ", \"in_h\": " << c.in_h << ", \"in_w\": " << c.in_w << ", \"in_c\": " << c.in_c
             << ", \"out_c\": " << c.out_c << ", \"kernel_h\": " << c.kernel_h
             << ", \"kernel_w\": " << c.kernel_w << ", \"stride_h\": " << c.stride_h
             << ", \"stride_w\": " << c.stride_w << ", \"pad_top\": " << p.h.before
             << ", \"pad_bottom\": " << p.h.after << ", \"pad_left\": " << p.w.before
             << ", \"pad_right\": " << p.w.after << ", \"out_h\": " << p.h.out
             << ", \"out_w\": " << p.w.out << "}";
    prepared.push_back(std::move(p));
  }
  manifest << "]}\n";
  {
    std::ofstream out(dir / "manifest.json");
    out << manifest.str();
    ASSERT_TRUE(out.good());
  }

  const fs::path log = dir / "torch.log";
  const std::string cmd = python + " " + script + " " + dir.string() + " > " + log.string() + " 2>&1";
  const int rc = std::system(cmd.c_str());
  std::stringstream log_text;
  log_text << std::ifstream(log).rdbuf();
  ASSERT_EQ(rc, 0) << cmd << "\n" << log_text.str();
  ASSERT_TRUE(fs::exists(dir / "done")) << log_text.str();

  // Float32 data, float64 references: 1e-5 of the summed term magnitudes.
  constexpr double kRel = 1e-5;
  bool all_ok = true;
  for (size_t i = 0; i < prepared.size(); ++i) {
    const TfConv& c = kCases[i];
    const Prepared& p = prepared[i];
    FakeResults fake;
    run_fake(c, p.h, p.w, p.x, p.wt, p.dy, &fake);
    const fs::path base = dir / c.name;
    const auto y_ok = emu_test::within(fake.y, expected_from(base, "y", fake.y.size()), kRel, std::string(c.name) + " y");
    const auto dx_ok = emu_test::within(fake.dx, expected_from(base, "dx", fake.dx.size()), kRel, std::string(c.name) + " dx");
    const auto dw_ok = emu_test::within(fake.dw, expected_from(base, "dw", fake.dw.size()), kRel, std::string(c.name) + " dw");
    EXPECT_TRUE(y_ok);
    EXPECT_TRUE(dx_ok);
    EXPECT_TRUE(dw_ok);
    all_ok = all_ok && y_ok && dx_ok && dw_ok;
  }
  if (all_ok) {
    fs::remove_all(dir);
  } else {
    ADD_FAILURE() << "inputs and torch's outputs kept in " << dir;
  }
}
