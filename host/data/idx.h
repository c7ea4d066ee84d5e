// IDX files (the MNIST / Fashion-MNIST container): a big-endian header of dimension
// sizes followed by the raw elements. Plain and gzip-compressed files are both read.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace bp {

struct IdxArray {
  std::vector<int64_t> dims;  // outermost first, e.g. {60000, 28, 28}
  std::vector<uint8_t> data;  // product(dims) elements, row-major
};

// Reads an unsigned-byte (type code 0x08) IDX file, gzipped or not (detected by the gzip
// magic bytes, not the name). Throws bp::Error naming the path and the reason on a
// missing, truncated, oversized or malformed file.
IdxArray read_idx(const std::string& path);

// Parses IDX bytes already in memory; `path` is only used in error messages.
IdxArray parse_idx(std::vector<uint8_t> bytes, const std::string& path);

}  // namespace bp
