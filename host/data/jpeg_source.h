// A data set of JPEG files (Tiny ImageNet, image folders): the loaders list the files and
// labels, load_jpeg_source decodes them, or reads them from the decoded cache when the source
// has not changed since.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace bp {

struct JpegSplit {
  std::vector<std::string> files;  // relative to JpegSource::root
  std::vector<int32_t> labels;     // one per file
};

struct JpegSource {
  std::string name;  // the data-set name, also the cache file's prefix
  std::string root;  // the directory as given by the spec
  std::vector<std::string> class_names;
  JpegSplit train, test;
};

// Decodes (or reads from the cache) every file of `source`. All images must have the size of
// the first training image. Prints one line to stderr saying which it does. The cache is
// rebuilt, with a warning, when it is damaged, and silently when the source changed: its
// fingerprint covers every file's relative path, size, modification time and label, and the
// class names. A cache that cannot be written is a warning, not an error.
Dataset load_jpeg_source(const JpegSource& source);

// The names of the JPEG files (.jpg or .jpeg, any case) directly in `dir`, sorted; throws
// bp::Error naming `dir` if it is not a readable directory.
std::vector<std::string> list_jpeg_files(const std::string& dir);

// Appends per_class[c][i] with label c to `split`, taking file i of every class in turn, so
// that the first N images (--train-limit N) cover all classes evenly.
void append_round_robin(const std::vector<std::vector<std::string>>& per_class, JpegSplit& split);

}  // namespace bp
