#include "data/image_folder.h"

#include <algorithm>
#include <filesystem>
#include <iterator>

#include "core/error.h"
#include "data/jpeg_decode.h"
#include "data/jpeg_source.h"

namespace bp {
namespace {

namespace fs = std::filesystem;

// Sorted names of the subfolders of `dir` (hidden ones, e.g. ".ipynb_checkpoints", skipped).
std::vector<std::string> class_folders(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    BP_FAIL(dir.string() << ": no such directory (expected DIR/train/<class>/ and DIR/test/<class>/)");
  }
  std::vector<std::string> names;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code entry_ec;
    const std::string name = it->path().filename().string();
    if (it->is_directory(entry_ec) && name[0] != '.') names.push_back(name);
  }
  if (ec) BP_FAIL(dir.string() << ": cannot list: " << ec.message());
  if (names.empty()) BP_FAIL(dir.string() << ": no class folders");
  std::sort(names.begin(), names.end());
  return names;
}

std::string joined_difference(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::vector<std::string> only;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(only));
  std::string out;
  for (const std::string& name : only) out += (out.empty() ? "" : ", ") + name;
  return out.empty() ? "none" : out;
}

JpegSplit list_split(const fs::path& root, const std::string& split_name,
                     const std::vector<std::string>& classes, bool every_class_needs_images) {
  std::vector<std::vector<std::string>> per_class;
  for (const std::string& name : classes) {
    const std::string folder = split_name + "/" + name;
    std::vector<std::string> files = list_jpeg_files((root / folder).string());
    if (files.empty() && every_class_needs_images) {
      BP_FAIL((root / folder).string() << ": no JPEG images (.jpg/.jpeg) for class " << name);
    }
    for (std::string& file : files) file = folder + "/" + file;
    per_class.push_back(std::move(files));
  }
  JpegSplit split;
  append_round_robin(per_class, split);
  return split;
}

}  // namespace

Dataset load_image_folder(const std::string& dir) {
  require_jpeg_support("folder:" + dir);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) BP_FAIL(dir << ": no such directory (data set folder)");
  const fs::path root(dir);
  const std::vector<std::string> classes = class_folders(root / "train");
  const std::vector<std::string> test_classes = class_folders(root / "test");
  if (test_classes != classes) {
    BP_FAIL((root / "test").string() << ": its class folders differ from " << (root / "train").string()
                                     << "'s: missing " << joined_difference(classes, test_classes)
                                     << "; extra " << joined_difference(test_classes, classes));
  }
  JpegSource source;
  source.name = "folder";
  source.root = dir;
  source.class_names = classes;
  // A class may lack test images (load_dataset warns, naming it), but a class the net can
  // never learn is a mistake.
  source.train = list_split(root, "train", classes, true);
  source.test = list_split(root, "test", classes, false);
  if (source.test.files.empty()) BP_FAIL((root / "test").string() << ": no JPEG images");
  return load_jpeg_source(source);
}

}  // namespace bp
