#include "data/dataset.h"

#include <cstdio>
#include <filesystem>
#include <string_view>

#include "core/error.h"
#include "data/cifar.h"
#include "data/idx.h"
#include "data/image_folder.h"
#include "data/tiny_imagenet.h"

namespace bp {

void ImageSet::truncate(int64_t n) {
  BP_CHECK(n >= 0, "ImageSet::truncate: negative count " << n);
  if (n >= count) return;
  count = n;
  pixels.resize(size_t(n * image_elements()));
  labels.resize(size_t(n));
  pixels.shrink_to_fit();
  labels.shrink_to_fit();
}

std::vector<int64_t> class_counts(const ImageSet& split, int classes) {
  std::vector<int64_t> count(size_t(classes), 0);
  for (int32_t label : split.labels) {
    if (label >= 0 && label < classes) ++count[size_t(label)];
  }
  return count;
}

namespace {

namespace fs = std::filesystem;

// ---- IDX (MNIST-style) directories ----------------------------------------------------

// The four files of an MNIST-style directory, by their canonical (LeCun) names.
struct IdxPair {
  const char* images;
  const char* labels;
};
constexpr IdxPair kIdxTrain = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte"};
constexpr IdxPair kIdxTest = {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
constexpr int kIdxClasses = 10;
// Above any image side seen in practice; keeps height*width well inside int.
constexpr int64_t kMaxSide = 1 << 15;

// Finds NAME in dir as NAME.gz or NAME, also under the "NAME.idx3-ubyte" spelling some
// mirrors use (dot instead of the last dash). Fails listing every name tried.
std::string find_idx_file(const fs::path& dir, const std::string& name) {
  std::vector<std::string> names = {name + ".gz", name};
  const size_t dash = name.rfind("-idx");
  if (dash != std::string::npos) {
    std::string dotted = name;
    dotted[dash] = '.';
    names.push_back(dotted + ".gz");
    names.push_back(dotted);
  }
  std::string tried;
  for (const std::string& candidate : names) {
    const fs::path path = dir / candidate;
    std::error_code ec;
    if (fs::is_regular_file(path, ec)) return path.string();
    tried += (tried.empty() ? "" : ", ") + candidate;
  }
  BP_FAIL(dir.string() << ": missing file " << (dir / name).string() << " (looked for " << tried << ")");
}

// The images and labels of one split. `max_images` (negative: all) bounds the images read;
// the labels file is read whole (it is small): every label is checked, and `counts`
// gets the images per class of the whole split.
ImageSet load_idx_pair(const fs::path& dir, const IdxPair& pair, int64_t max_images,
                       std::vector<int64_t>& counts) {
  const std::string images_path = find_idx_file(dir, pair.images);
  const std::string labels_path = find_idx_file(dir, pair.labels);
  IdxArray images = read_idx(images_path, max_images);
  const IdxArray labels = read_idx(labels_path);
  if (images.dims.size() != 3) {
    BP_FAIL(images_path << ": expected 3-D images (count, height, width), got " << images.dims.size()
                        << " dimensions");
  }
  if (labels.dims.size() != 1) {
    BP_FAIL(labels_path << ": expected 1-D labels, got " << labels.dims.size() << " dimensions");
  }
  const int64_t height = images.dims[1], width = images.dims[2];
  if (height < 1 || width < 1 || height > kMaxSide || width > kMaxSide) {
    BP_FAIL(images_path << ": bad image size " << height << "x" << width);
  }
  if (images.file_items != labels.file_items) {
    BP_FAIL("image/label count mismatch: " << images_path << " holds " << images.file_items << " images, "
                                           << labels_path << " holds " << labels.file_items << " labels");
  }
  counts.assign(size_t(kIdxClasses), 0);
  for (size_t i = 0; i < labels.data.size(); ++i) {
    if (labels.data[i] >= kIdxClasses) {
      BP_FAIL(labels_path << ": label " << int(labels.data[i]) << " at index " << i << " is outside [0, "
                          << kIdxClasses << ")");
    }
    ++counts[labels.data[i]];
  }
  ImageSet set;
  set.count = images.dims[0];
  set.height = int(height);
  set.width = int(width);
  set.channels = 1;
  set.pixels = std::move(images.data);
  set.labels.assign(labels.data.begin(), labels.data.begin() + std::ptrdiff_t(set.count));
  return set;
}

Dataset load_idx_dir(const std::string& dir, const DataLimits& limits, const std::string& name,
                     std::vector<std::string> class_names) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) BP_FAIL(dir << ": no such directory (data set " << name << ")");
  Dataset data;
  data.name = name;
  data.source = dir;
  data.classes = kIdxClasses;
  data.class_names = std::move(class_names);
  data.train = load_idx_pair(dir, kIdxTrain, limits.train, data.train_class_counts);
  data.test = load_idx_pair(dir, kIdxTest, limits.test, data.test_class_counts);
  if (data.train.height != data.test.height || data.train.width != data.test.width) {
    BP_FAIL(dir << ": train images are " << data.train.height << "x" << data.train.width
                << " but test images are " << data.test.height << "x" << data.test.width);
  }
  return data;
}

Dataset load_mnist(const std::string& dir, const DataLimits& limits) {
  return load_idx_dir(dir, limits, "mnist", {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"});
}

Dataset load_fashion_mnist(const std::string& dir, const DataLimits& limits) {
  return load_idx_dir(dir, limits, "fashion-mnist",
                      {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                       "Bag", "Ankle boot"});
}

// Loaders that read a split whole; load_dataset applies the limits after them.
template <Dataset (*Load)(const std::string&)>
Dataset whole(const std::string& dir, const DataLimits&) {
  return Load(dir);
}

// ---- spec table: one row per data-set prefix; new loaders add a row --------------------

struct SpecForm {
  const char* prefix;       // text before the ':'
  const char* form;         // how it is written, for --help and errors
  const char* default_dir;  // used when the spec has no ":DIR"; nullptr: DIR is required
  Dataset (*load)(const std::string& dir, const DataLimits& limits);
};

const SpecForm kSpecForms[] = {
    {"mnist", "mnist:DIR", nullptr, load_mnist},
    {"fashion-mnist", "fashion-mnist[:DIR]", "/usr/share/datasets/fashion-mnist", load_fashion_mnist},
    {"cifar10", "cifar10:DIR", nullptr, whole<load_cifar10>},
    {"cifar100", "cifar100:DIR", nullptr, whole<load_cifar100>},
    {"cifar100-coarse", "cifar100-coarse:DIR", nullptr, whole<load_cifar100_coarse>},
    {"tiny-imagenet", "tiny-imagenet:DIR", nullptr, whole<load_tiny_imagenet>},
    {"folder", "folder:DIR", nullptr, whole<load_image_folder>},
};

// A class with training images but none in the test split is learnt but never measured: its
// test accuracy is missing from every figure, silently. Allowed (a small or hand-made folder
// may lack some), but said once per load, naming the classes and the data set's directory.
void warn_classes_without_test_images(const Dataset& data) {
  const std::vector<int64_t>& train_count = data.train_class_counts;
  const std::vector<int64_t>& test_count = data.test_class_counts;
  std::string missing;
  int n = 0;
  for (int c = 0; c < data.classes; ++c) {
    if (train_count[size_t(c)] == 0 || test_count[size_t(c)] > 0) continue;
    const std::string name = size_t(c) < data.class_names.size() ? data.class_names[size_t(c)] : std::to_string(c);
    if (++n <= 20) missing += (missing.empty() ? "\"" : ", \"") + name + "\"";
  }
  if (n == 0) return;
  if (n > 20) missing += " and " + std::to_string(n - 20) + " more";
  std::fprintf(stderr,
               "brainprop: warning: %s: %d of %d classes have training images but no test images: %s "
               "(their test accuracy is never measured)\n",
               data.source.c_str(), n, data.classes, missing.c_str());
}

std::string forms_list() {
  std::string out;
  for (const std::string& form : dataset_spec_forms()) out += (out.empty() ? "" : ", ") + form;
  return out;
}

}  // namespace

std::vector<std::string> dataset_spec_forms() {
  std::vector<std::string> forms;
  for (const SpecForm& form : kSpecForms) forms.emplace_back(form.form);
  return forms;
}

Dataset load_dataset(const std::string& spec, const DataLimits& limits) {
  const size_t colon = spec.find(':');
  const std::string prefix = spec.substr(0, colon);
  const std::string dir = colon == std::string::npos ? std::string() : spec.substr(colon + 1);
  for (const SpecForm& form : kSpecForms) {
    if (prefix != form.prefix) continue;
    std::string where = dir;
    if (where.empty()) {
      if (!form.default_dir) BP_FAIL("data set spec '" << spec << "' needs a directory: " << form.form);
      where = form.default_dir;
    }
    Dataset data = form.load(where, limits);
    if (data.train_class_counts.empty()) data.train_class_counts = class_counts(data.train, data.classes);
    if (data.test_class_counts.empty()) data.test_class_counts = class_counts(data.test, data.classes);
    warn_classes_without_test_images(data);  // on the whole data set, before the limits
    // Negative limits mean "all" (the -1 default).
    if (limits.train >= 0) data.train.truncate(limits.train);
    if (limits.test >= 0) data.test.truncate(limits.test);
    return data;
  }
  BP_FAIL("unknown data set spec '" << spec << "'; known forms: " << forms_list());
}

}  // namespace bp
