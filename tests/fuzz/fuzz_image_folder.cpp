// JPEG decoding through the image-folder loader: the input is one JPEG file, written as
// DIR/train/c/a.jpg and DIR/test/c/a.jpg and loaded with load_dataset("folder:DIR") (header
// read, size checks, decode to RGB). The decoded cache is off (no HOME, no cache variables).
#include <cstdint>
#include <string>

#include "data/dataset.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  bp_fuzz::quiet_environment();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view jpeg(reinterpret_cast<const char*>(data), size);
  const std::string dir = bp_fuzz::scratch_dir() + "/folder";
  bp_fuzz::write_file(dir + "/train/c/a.jpg", jpeg);
  bp_fuzz::write_file(dir + "/test/c/a.jpg", jpeg);
  bp_fuzz::expect_success_or_error([&] {
    const bp::Dataset set = bp::load_dataset("folder:" + dir);
    bp_fuzz::require(set.train.count == 1 && set.test.count == 1 && set.train.channels == 3 &&
                         set.train.pixels.size() == size_t(set.train.image_elements()) &&
                         set.train.pixels == set.test.pixels,
                     "image folder: one JPEG decoded two ways");
  });
  return 0;
}
