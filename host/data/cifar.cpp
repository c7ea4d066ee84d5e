#include "data/cifar.h"

#include <filesystem>
#include <vector>

#include "core/error.h"
#include "data/text_lines.h"
#include "io/atomic_file.h"

namespace bp {
namespace {

namespace fs = std::filesystem;

constexpr int kSide = 32;
constexpr int kPlane = kSide * kSide;
constexpr int kImageBytes = 3 * kPlane;

const std::vector<std::string> kCifar10Names = {"airplane", "automobile", "bird",  "cat",  "deer",
                                                "dog",      "frog",       "horse", "ship", "truck"};

// The names the authors' fine_label_names.txt / coarse_label_names.txt list, in label order:
// used when those files are absent.
const std::vector<std::string> kCifar100FineNames = {
    "apple",       "aquarium_fish", "baby",         "bear",      "beaver",     "bed",       "bee",
    "beetle",      "bicycle",       "bottle",       "bowl",      "boy",        "bridge",    "bus",
    "butterfly",   "camel",         "can",          "castle",    "caterpillar", "cattle",   "chair",
    "chimpanzee",  "clock",         "cloud",        "cockroach", "couch",      "crab",      "crocodile",
    "cup",         "dinosaur",      "dolphin",      "elephant",  "flatfish",   "forest",    "fox",
    "girl",        "hamster",       "house",        "kangaroo",  "keyboard",   "lamp",      "lawn_mower",
    "leopard",     "lion",          "lizard",       "lobster",   "man",        "maple_tree", "motorcycle",
    "mountain",    "mouse",         "mushroom",     "oak_tree",  "orange",     "orchid",    "otter",
    "palm_tree",   "pear",          "pickup_truck", "pine_tree", "plain",      "plate",     "poppy",
    "porcupine",   "possum",        "rabbit",       "raccoon",   "ray",        "road",      "rocket",
    "rose",        "sea",           "seal",         "shark",     "shrew",      "skunk",     "skyscraper",
    "snail",       "snake",         "spider",       "squirrel",  "streetcar",  "sunflower", "sweet_pepper",
    "table",       "tank",          "telephone",    "television", "tiger",     "tractor",   "train",
    "trout",       "tulip",         "turtle",       "wardrobe",  "whale",      "willow_tree", "wolf",
    "woman",       "worm"};
const std::vector<std::string> kCifar100CoarseNames = {
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes", "large_omnivores_and_herbivores",
    "medium_mammals", "non-insect_invertebrates", "people", "reptiles", "small_mammals", "trees",
    "vehicles_1", "vehicles_2"};

// One label byte of a record: where it sits and how many classes it has.
struct LabelByte {
  const char* what;  // "label", "coarse label", "fine label", for error messages
  int classes;
};

// What distinguishes one CIFAR variant from another.
struct CifarFormat {
  const char* name;                        // the data-set name, "cifar10"...
  const char* folder;                      // the folder the authors' archive unpacks to
  std::vector<const char*> train_files;
  const char* test_file;
  std::vector<LabelByte> label_bytes;      // every label byte of a record, in file order
  int used_label;                          // the index in label_bytes that becomes the label
  const char* names_file;                  // optional class-name list
  const std::vector<std::string>* default_names;
};

int record_bytes(const CifarFormat& format) { return int(format.label_bytes.size()) + kImageBytes; }

// DIR may be the folder of .bin files itself or the folder that holds it.
fs::path resolve_dir(const std::string& dir, const CifarFormat& format) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) BP_FAIL(dir << ": no such directory (data set " << format.name << ")");
  const fs::path here(dir);
  if (fs::is_regular_file(here / format.test_file, ec)) return here;
  const fs::path inner = here / format.folder;
  if (fs::is_directory(inner, ec)) return inner;
  BP_FAIL(dir << ": missing file " << (here / format.test_file).string() << " (also looked in "
              << inner.string() << "/; the " << format.name << " binary version is expected)");
}

// Appends one file's records to `set`: labels checked, planar CHW pixels turned into HWC.
void append_records(const fs::path& path, const CifarFormat& format, ImageSet& set) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    BP_FAIL(path.string() << ": missing file (data set " << format.name << ")");
  }
  const std::string bytes = read_file(path.string());
  const size_t record = size_t(record_bytes(format));
  if (bytes.empty() || bytes.size() % record != 0) {
    BP_FAIL(path.string() << ": size " << bytes.size() << " bytes is not a positive multiple of the "
                          << record << "-byte " << format.name << " record (truncated or not a "
                          << format.name << " binary file)");
  }
  const int64_t n = int64_t(bytes.size() / record);
  const auto* in = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t label_count = format.label_bytes.size();
  const int64_t first = set.count;
  set.labels.resize(size_t(first + n));
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* rec = in + size_t(i) * record;
    for (size_t b = 0; b < label_count; ++b) {
      const LabelByte& label = format.label_bytes[b];
      if (rec[b] >= label.classes) {
        BP_FAIL(path.string() << ": record " << i << ": " << label.what << " " << int(rec[b])
                              << " is outside [0, " << label.classes << ")");
      }
    }
    set.labels[size_t(first + i)] = rec[format.used_label];
  }
  set.pixels.resize(size_t(first + n) * kImageBytes);
  uint8_t* out = set.pixels.data() + size_t(first) * kImageBytes;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* planes = in + size_t(i) * record + label_count;
    uint8_t* hwc = out + size_t(i) * kImageBytes;
    for (int p = 0; p < kPlane; ++p) {
      hwc[3 * p + 0] = planes[p];
      hwc[3 * p + 1] = planes[kPlane + p];
      hwc[3 * p + 2] = planes[2 * kPlane + p];
    }
  }
  set.count = first + n;
}

ImageSet load_split(const fs::path& dir, const std::vector<const char*>& files, const CifarFormat& format) {
  ImageSet set;
  set.height = kSide;
  set.width = kSide;
  set.channels = 3;
  for (const char* file : files) append_records(dir / file, format, set);
  return set;
}

// The class names from the optional names file (blank lines ignored), else the standard ones.
std::vector<std::string> class_names(const fs::path& dir, const CifarFormat& format) {
  const fs::path path = dir / format.names_file;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return *format.default_names;
  std::vector<std::string> names;
  for (const std::string& line : read_text_lines(path.string())) {
    std::string name = trim_blanks(line);
    if (!name.empty()) names.push_back(std::move(name));
  }
  const size_t classes = format.default_names->size();
  if (names.size() != classes) {
    BP_FAIL(path.string() << ": lists " << names.size() << " class names, " << format.name << " has "
                          << classes);
  }
  return names;
}

Dataset load_cifar(const std::string& dir, const CifarFormat& format) {
  const fs::path where = resolve_dir(dir, format);
  Dataset data;
  data.name = format.name;
  data.source = where.string();
  data.class_names = class_names(where, format);
  data.classes = int(data.class_names.size());
  data.train = load_split(where, format.train_files, format);
  data.test = load_split(where, {format.test_file}, format);
  return data;
}

const std::vector<const char*> kCifar10Train = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                                "data_batch_4.bin", "data_batch_5.bin"};
const std::vector<LabelByte> kCifar100Labels = {{"coarse label", 20}, {"fine label", 100}};

}  // namespace

Dataset load_cifar10(const std::string& dir) {
  const CifarFormat format = {"cifar10", "cifar-10-batches-bin", kCifar10Train, "test_batch.bin",
                              {{"label", 10}}, 0, "batches.meta.txt", &kCifar10Names};
  return load_cifar(dir, format);
}

Dataset load_cifar100(const std::string& dir) {
  const CifarFormat format = {"cifar100", "cifar-100-binary", {"train.bin"}, "test.bin", kCifar100Labels,
                              1, "fine_label_names.txt", &kCifar100FineNames};
  return load_cifar(dir, format);
}

Dataset load_cifar100_coarse(const std::string& dir) {
  const CifarFormat format = {"cifar100-coarse", "cifar-100-binary", {"train.bin"}, "test.bin",
                              kCifar100Labels, 0, "coarse_label_names.txt", &kCifar100CoarseNames};
  return load_cifar(dir, format);
}

}  // namespace bp
