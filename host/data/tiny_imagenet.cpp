#include "data/tiny_imagenet.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "data/jpeg_decode.h"
#include "data/jpeg_source.h"
#include "data/text_lines.h"

namespace bp {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> read_wnids(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) BP_FAIL(path.string() << ": missing file (Tiny ImageNet class list)");
  std::vector<std::string> wnids;
  for (const std::string& line : read_text_lines(path.string())) {
    std::string wnid = trim_blanks(line);
    if (wnid.empty()) continue;
    if (std::find(wnids.begin(), wnids.end(), wnid) != wnids.end()) {
      BP_FAIL(path.string() << ": class " << wnid << " is listed twice");
    }
    wnids.push_back(std::move(wnid));
  }
  if (wnids.empty()) BP_FAIL(path.string() << ": lists no classes");
  return wnids;
}

// words.txt maps every WordNet id (82k of them) to its words; the wnid itself when absent.
std::vector<std::string> class_names(const fs::path& path, const std::vector<std::string>& wnids) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return wnids;
  std::map<std::string, std::string> words;
  for (const std::string& line : read_text_lines(path.string())) {
    const std::vector<std::string> fields = split_tabs(line);
    if (fields.size() >= 2) words[trim_blanks(fields[0])] = trim_blanks(fields[1]);
  }
  std::vector<std::string> names;
  for (const std::string& wnid : wnids) {
    const auto it = words.find(wnid);
    names.push_back(it == words.end() || it->second.empty() ? wnid : it->second);
  }
  return names;
}

// val/val_annotations.txt: "file<TAB>wnid<TAB>bbox..." per image; files sorted by name.
JpegSplit read_val(const fs::path& root, const std::vector<std::string>& wnids) {
  const fs::path path = root / "val" / "val_annotations.txt";
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) BP_FAIL(path.string() << ": missing file (Tiny ImageNet val labels)");
  std::map<std::string, int32_t> class_of;
  for (size_t c = 0; c < wnids.size(); ++c) class_of[wnids[c]] = int32_t(c);
  std::map<std::string, int32_t> label_of_file;
  const std::vector<std::string> lines = read_text_lines(path.string());
  for (size_t i = 0; i < lines.size(); ++i) {
    if (trim_blanks(lines[i]).empty()) continue;
    const std::vector<std::string> fields = split_tabs(lines[i]);
    if (fields.size() < 2) BP_FAIL(path.string() << ": line " << i + 1 << ": expected file<TAB>wnid");
    const std::string file = trim_blanks(fields[0]), wnid = trim_blanks(fields[1]);
    const auto it = class_of.find(wnid);
    if (it == class_of.end()) {
      BP_FAIL(path.string() << ": line " << i + 1 << ": class " << wnid << " is not in wnids.txt");
    }
    if (file.empty() || file.find('/') != std::string::npos) {
      BP_FAIL(path.string() << ": line " << i + 1 << ": bad file name '" << file << "'");
    }
    if (!label_of_file.emplace(file, it->second).second) {
      BP_FAIL(path.string() << ": line " << i + 1 << ": " << file << " is labelled twice");
    }
  }
  JpegSplit split;
  for (const auto& [file, label] : label_of_file) {  // std::map: sorted by file name
    split.files.push_back("val/images/" + file);
    split.labels.push_back(label);
  }
  return split;
}

}  // namespace

Dataset load_tiny_imagenet(const std::string& dir) {
  require_jpeg_support("tiny-imagenet:" + dir);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) BP_FAIL(dir << ": no such directory (data set tiny-imagenet)");
  const fs::path root(dir);
  JpegSource source;
  source.name = "tiny-imagenet";
  source.root = dir;
  const std::vector<std::string> wnids = read_wnids(root / "wnids.txt");
  source.class_names = class_names(root / "words.txt", wnids);
  std::vector<std::vector<std::string>> per_class;
  for (const std::string& wnid : wnids) {
    const std::string images = "train/" + wnid + "/images";
    std::vector<std::string> files = list_jpeg_files((root / images).string());
    if (files.empty()) BP_FAIL((root / images).string() << ": no JPEG images for class " << wnid);
    for (std::string& file : files) file = images + "/" + file;
    per_class.push_back(std::move(files));
  }
  append_round_robin(per_class, source.train);
  source.test = read_val(root, wnids);
  return load_jpeg_source(source);
}

}  // namespace bp
