// The decoded-image cache: a JPEG data set decoded once is kept as one binary file of pixels,
// labels and class names, so that later runs read it in seconds instead of decoding again.
#pragma once
#include <cstdint>
#include <string>

#include "data/dataset.h"

namespace bp {

// $BRAINPROP_CACHE_DIR, else $XDG_CACHE_HOME/brainprop, else $HOME/.cache/brainprop; ""
// when none of them is set (caching is then off).
std::string image_cache_directory();

// The cache file for data set `kind` read from `source`: named by a hash of the source's
// absolute path, so every source directory has its own file. "" when caching is off.
std::string image_cache_path(const std::string& kind, const std::string& source);

// Writes class_names, train and test of `data` with `fingerprint` atomically to `path`
// (creating its directory). Throws bp::Error naming `path` on failure.
void write_image_cache(const std::string& path, uint64_t fingerprint, const Dataset& data);

enum class CacheStatus {
  kHit,      // read; `out` holds the data
  kMissing,  // no such file
  kStale,    // a valid file for another fingerprint (the source changed)
  kCorrupt,  // unreadable, truncated, or inconsistent; `why` says how
};

// Reads `path` into out.class_names, out.classes, out.train and out.test when it is a valid
// cache for `fingerprint`. Every size is checked against the file's length and a CRC-32 of
// the whole file, so a truncated or damaged cache is reported, never used.
CacheStatus read_image_cache(const std::string& path, uint64_t fingerprint, Dataset& out, std::string& why);

}  // namespace bp
