// In-memory image data sets: uint8 pixels in NHWC order (what the IDX, CIFAR and JPEG
// sources hold), int32 labels. Scaling to [0, 1] happens when a batch is gathered.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace bp {

struct ImageSet {
  int64_t count = 0;
  int height = 0, width = 0, channels = 0;
  std::vector<uint8_t> pixels;  // count * height * width * channels, NHWC
  std::vector<int32_t> labels;  // count, each in [0, classes)

  int64_t image_elements() const { return int64_t(height) * width * channels; }
  // Keep the first n images (n >= count leaves the set as it is).
  void truncate(int64_t n);
};

struct Dataset {
  std::string name;                      // "mnist", "fashion-mnist", ...
  std::string source;                    // where it was read from
  int classes = 0;
  std::vector<std::string> class_names;  // classes entries
  ImageSet train, test;
  // Images per class in the whole train and test splits, before any limit: a loader that
  // reads only the first N images still counts every label (load_dataset fills these in
  // from the labels for loaders that read everything).
  std::vector<int64_t> train_class_counts, test_class_counts;
};

struct DataLimits {
  int64_t train = -1;  // --train-limit: keep the first N training images (-1: all)
  int64_t test = -1;   // --test-limit
};

// Images per class among a split's labels (labels outside [0, classes) are not counted).
std::vector<int64_t> class_counts(const ImageSet& split, int classes);

// Loads a data set from a spec such as "mnist:DIR", "fashion-mnist" or "fashion-mnist:DIR".
// Throws bp::Error naming the file and the reason on any missing or malformed input. A class
// with training images but no test images is allowed, with a warning on stderr naming the
// classes and the data set's directory. IDX data sets (MNIST, Fashion-MNIST) read only the
// images the limits keep; the other loaders read everything and drop the rest.
Dataset load_dataset(const std::string& spec, const DataLimits& limits = {});

// The spec names the data set knows about, for --help and error messages.
std::vector<std::string> dataset_spec_forms();

}  // namespace bp
