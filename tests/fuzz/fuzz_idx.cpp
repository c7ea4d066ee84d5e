// IDX (MNIST-style) reader: the input is [u16 n][n bytes: images file][rest: labels file],
// each plain or gzipped. parse_idx reads each part in memory; then both are written as the
// train and test files of an MNIST directory and loaded as a data set (the gzip path, the
// image/label checks of data/dataset.cpp).
#include <cstdint>
#include <vector>

#include "data/dataset.h"
#include "data/idx.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  bp_fuzz::quiet_environment();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const bp_fuzz::TwoParts parts = bp_fuzz::split_two(data, size);
  for (std::string_view part : {parts.first, parts.second}) {
    bp_fuzz::expect_success_or_error([&] {
      const bp::IdxArray array = bp::parse_idx(std::vector<uint8_t>(part.begin(), part.end()), "fuzz.idx");
      int64_t elements = 1;
      for (int64_t d : array.dims) elements *= d;
      bp_fuzz::require(int64_t(array.data.size()) == elements, "parse_idx: data size != product(dims)");
    });
  }
  const std::string dir = bp_fuzz::scratch_dir() + "/mnist";
  for (const char* split : {"train", "t10k"}) {
    bp_fuzz::write_file(dir + "/" + split + "-images-idx3-ubyte", parts.first);
    bp_fuzz::write_file(dir + "/" + split + "-labels-idx1-ubyte", parts.second);
  }
  bp_fuzz::expect_success_or_error([&] {
    const bp::Dataset set = bp::load_dataset("mnist:" + dir);
    for (const bp::ImageSet* s : {&set.train, &set.test}) {
      bp_fuzz::require(int64_t(s->pixels.size()) == s->count * s->image_elements() &&
                           int64_t(s->labels.size()) == s->count,
                       "IDX data set: sizes disagree");
    }
  });
  return 0;
}
