// IDX files (the MNIST / Fashion-MNIST container): a big-endian header of dimension
// sizes followed by the raw elements. Plain and gzip-compressed files are both read.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace bp {

struct IdxArray {
  std::vector<int64_t> dims;  // outermost first, e.g. {60000, 28, 28}; dims[0]: the items read
  int64_t file_items = 0;     // dims[0] as the file's header gives it
  std::vector<uint8_t> data;  // product(dims) elements, row-major
};

// Reads an unsigned-byte (type code 0x08) IDX file, gzipped or not (detected by the gzip
// magic bytes, not the name). Throws bp::Error naming the path and the reason on a
// missing, truncated, oversized or malformed file.
// With max_items >= 0, only the header and the first max_items items (the outermost
// dimension) are read or decompressed: a 4000-image subset of Fashion-MNIST costs a fifteenth
// of the whole. Damage past those items (a cut or corrupt tail) then goes unseen.
IdxArray read_idx(const std::string& path, int64_t max_items = -1);

// Parses IDX bytes already in memory; `path` is only used in error messages.
IdxArray parse_idx(const std::vector<uint8_t>& bytes, const std::string& path);

}  // namespace bp
