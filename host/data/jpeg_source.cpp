#include "data/jpeg_source.h"

#include <omp.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "data/fnv_hash.h"
#include "data/image_cache.h"
#include "data/jpeg_decode.h"

namespace bp {
namespace {

namespace fs = std::filesystem;

// Bump when the decoded output for the same files would change (e.g. another decoder option).
constexpr const char* kDecodeVersion = "turbojpeg-rgb-v1";

std::string full_path(const JpegSource& source, const std::string& relative) {
  return (fs::path(source.root) / relative).string();
}

// Hashes what the decoded data depends on: names, and per file its path, label, size and
// modification time (a stat per file: cheap next to decoding, and needed on every start).
uint64_t fingerprint(const JpegSource& source) {
  Fnv1a64 hash;
  hash.add_string(kDecodeVersion);
  hash.add_string(source.name);
  hash.add_u64(source.class_names.size());
  for (const std::string& name : source.class_names) hash.add_string(name);
  for (const JpegSplit* split : {&source.train, &source.test}) {
    hash.add_u64(split->files.size());
    for (size_t i = 0; i < split->files.size(); ++i) {
      const std::string path = full_path(source, split->files[i]);
      struct stat st {};
      if (::stat(path.c_str(), &st) != 0) BP_FAIL(path << ": cannot read: " << std::strerror(errno));
      hash.add_string(split->files[i]);
      hash.add_u64(uint64_t(split->labels[i]));
      hash.add_u64(uint64_t(st.st_size));
      hash.add_u64(uint64_t(st.st_mtim.tv_sec));
      hash.add_u64(uint64_t(st.st_mtim.tv_nsec));
    }
  }
  return hash.value();
}

// The cache must hold exactly what the listing says, not merely something of the right size.
bool matches_listing(const Dataset& cached, const JpegSource& source) {
  return cached.class_names == source.class_names && cached.train.labels == source.train.labels &&
         cached.test.labels == source.test.labels;
}

ImageSet decode_split(const JpegSource& source, const JpegSplit& split, int height, int width) {
  ImageSet set;
  set.count = int64_t(split.files.size());
  set.height = height;
  set.width = width;
  set.channels = 3;
  set.labels = split.labels;
  set.pixels.resize(size_t(set.count * set.image_elements()));
  std::vector<std::string> paths;
  paths.reserve(split.files.size());
  for (const std::string& file : split.files) paths.push_back(full_path(source, file));
  decode_jpegs_rgb(paths, height, width, set.pixels.data());
  return set;
}

}  // namespace

Dataset load_jpeg_source(const JpegSource& source) {
  require_jpeg_support(source.name + ":" + source.root);
  if (source.train.files.empty()) {
    BP_FAIL(source.root << ": no training images (data set " << source.name << ")");
  }
  Dataset data;
  data.name = source.name;
  data.source = source.root;
  const uint64_t print = fingerprint(source);
  const std::string cache = image_cache_path(source.name, source.root);

  std::string note;
  if (!cache.empty()) {
    std::string why;
    const CacheStatus status = read_image_cache(cache, print, data, why);
    if (status == CacheStatus::kHit && matches_listing(data, source)) {
      std::fprintf(stderr, "brainprop: %s: using decoded cache %s (%lld images)\n", source.root.c_str(),
                   cache.c_str(), static_cast<long long>(data.train.count + data.test.count));
      return data;
    }
    if (status == CacheStatus::kHit) why = "its labels or class names differ from the source";
    if (status == CacheStatus::kHit || status == CacheStatus::kCorrupt) {
      std::fprintf(stderr, "brainprop: warning: cache %s is unusable (%s); rebuilding it\n", cache.c_str(),
                   why.c_str());
    }
    note = status == CacheStatus::kStale ? "; source changed, cache " : "; cache ";
    note += cache;
  }

  const JpegSize size = read_jpeg_size(full_path(source, source.train.files.front()));
  const size_t total = source.train.files.size() + source.test.files.size();
  std::fprintf(stderr, "brainprop: decoding %zu JPEGs from %s with %d threads%s...\n", total,
               source.root.c_str(), omp_get_max_threads(), note.c_str());
  data.class_names = source.class_names;
  data.classes = int(source.class_names.size());
  data.train = decode_split(source, source.train, size.height, size.width);
  data.test = decode_split(source, source.test, size.height, size.width);

  if (!cache.empty()) {
    try {
      write_image_cache(cache, print, data);
    } catch (const Error& e) {
      std::fprintf(stderr, "brainprop: warning: cannot write the decoded cache: %s\n", e.what());
    }
  }
  return data;
}

std::vector<std::string> list_jpeg_files(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) BP_FAIL(dir << ": no such directory");
  std::vector<std::string> names;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code entry_ec;  // a broken link is skipped, not a listing failure
    if (!it->is_regular_file(entry_ec)) continue;
    std::string ext = it->path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(),
                   [](unsigned char c) { return char(std::tolower(c)); });
    if (ext == ".jpg" || ext == ".jpeg") names.push_back(it->path().filename().string());
  }
  if (ec) BP_FAIL(dir << ": cannot list: " << ec.message());
  std::sort(names.begin(), names.end());
  return names;
}

void append_round_robin(const std::vector<std::vector<std::string>>& per_class, JpegSplit& split) {
  size_t longest = 0;
  for (const auto& files : per_class) longest = std::max(longest, files.size());
  for (size_t i = 0; i < longest; ++i) {
    for (size_t c = 0; c < per_class.size(); ++c) {
      if (i >= per_class[c].size()) continue;
      split.files.push_back(per_class[c][i]);
      split.labels.push_back(int32_t(c));
    }
  }
}

}  // namespace bp
