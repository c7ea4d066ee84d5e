#include "data/idx.h"

#include <zlib.h>

#include <fstream>
#include <iterator>
#include <memory>
#include <utility>

#include "core/error.h"

namespace bp {
namespace {

constexpr uint8_t kTypeUnsignedByte = 0x08;
constexpr int kMaxDims = 4;
// Far above any real data set; keeps the size arithmetic free of overflow.
constexpr int64_t kMaxElements = int64_t(1) << 40;

bool has_gzip_magic(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) BP_FAIL(path << ": cannot open file");
  unsigned char magic[2] = {0, 0};
  in.read(reinterpret_cast<char*>(magic), 2);
  return in.gcount() == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
}

std::vector<uint8_t> read_plain(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) BP_FAIL(path << ": cannot open file");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) BP_FAIL(path << ": read error");
  return bytes;
}

uint32_t big_endian_u32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

// The file size an IDX header implies (header plus data), once `bytes` holds the whole
// header; 0 while it does not, or when the header is one parse_idx will refuse anyway.
size_t idx_size_from_header(const std::vector<uint8_t>& bytes) {
  if (bytes.size() < 4 || bytes[0] != 0 || bytes[1] != 0 || bytes[2] != kTypeUnsignedByte) return 0;
  const int ndims = bytes[3];
  const size_t header_bytes = 4 + 4 * size_t(ndims);
  if (ndims < 1 || ndims > kMaxDims || bytes.size() < header_bytes) return 0;
  int64_t elements = 1;
  for (int i = 0; i < ndims; ++i) {
    const int64_t dim = big_endian_u32(&bytes[4 + 4 * size_t(i)]);
    if (dim != 0 && elements > kMaxElements / dim) return 0;
    elements *= dim;
  }
  return header_bytes + size_t(elements);
}

// Decompresses `path`, but stops once the data runs past what the IDX header says (an
// error), or once a header parse_idx will refuse is in: a few kilobytes of gzip can expand to
// gigabytes (deflate reaches 1000:1), and parse_idx checks sizes only after reading.
std::vector<uint8_t> read_gzip(const std::string& path) {
  std::unique_ptr<gzFile_s, int (*)(gzFile)> file(gzopen(path.c_str(), "rb"), gzclose);
  if (!file) BP_FAIL(path << ": cannot open gzip file");
  std::vector<uint8_t> bytes;
  std::vector<uint8_t> chunk(1 << 20);
  size_t expected = 0;  // from the header, once it is in
  for (;;) {
    const int got = gzread(file.get(), chunk.data(), unsigned(chunk.size()));
    if (got < 0) {
      int code = 0;
      const char* message = gzerror(file.get(), &code);
      BP_FAIL(path << ": corrupt gzip data: " << (message ? message : "unknown zlib error"));
    }
    if (got == 0) break;
    bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + got);
    if (expected == 0) expected = idx_size_from_header(bytes);
    if (expected == 0 && bytes.size() >= 4 + 4 * size_t(kMaxDims)) break;  // a bad header: parse_idx says why
    if (expected != 0 && bytes.size() > expected) {
      BP_FAIL(path << ": trailing garbage: the decompressed data runs past the " << expected
                   << " bytes (header and data) its IDX header implies");
    }
  }
  // A stream cut short reads as a clean end of file, with the error left in gzerror.
  int code = Z_OK;
  const char* message = gzerror(file.get(), &code);
  if (code != Z_OK) {
    BP_FAIL(path << ": corrupt or truncated gzip data: " << (message ? message : "unknown zlib error"));
  }
  return bytes;
}


std::string dims_string(const std::vector<int64_t>& dims) {
  std::string out;
  for (size_t i = 0; i < dims.size(); ++i) out += (i ? "x" : "") + std::to_string(dims[i]);
  return out;
}

}  // namespace

IdxArray parse_idx(std::vector<uint8_t> bytes, const std::string& path) {
  if (bytes.size() < 4) {
    BP_FAIL(path << ": truncated header: " << bytes.size() << " bytes, an IDX header needs at least 4");
  }
  if (bytes[0] != 0 || bytes[1] != 0) {
    BP_FAIL(path << ": not an IDX file: bad magic (first two bytes must be 0, got " << int(bytes[0])
                 << " " << int(bytes[1]) << ")");
  }
  const int type = bytes[2];
  if (type != kTypeUnsignedByte) {
    BP_FAIL(path << ": unsupported IDX type code 0x" << std::hex << type << std::dec
                 << " (only 0x08, unsigned byte, is supported)");
  }
  const int ndims = bytes[3];
  if (ndims < 1 || ndims > kMaxDims) {
    BP_FAIL(path << ": bad IDX dimension count " << ndims << " (expected 1 to " << kMaxDims << ")");
  }
  const size_t header_bytes = 4 + 4 * size_t(ndims);
  if (bytes.size() < header_bytes) {
    BP_FAIL(path << ": truncated header: " << ndims << " dimensions need " << header_bytes
                 << " header bytes, file holds " << bytes.size());
  }

  IdxArray array;
  int64_t elements = 1;
  for (int i = 0; i < ndims; ++i) {
    const int64_t dim = big_endian_u32(&bytes[4 + 4 * size_t(i)]);
    array.dims.push_back(dim);
    if (dim != 0 && elements > kMaxElements / dim) {
      BP_FAIL(path << ": implausibly large IDX array, dims " << dims_string(array.dims) << "...");
    }
    elements *= dim;
  }

  const int64_t payload = int64_t(bytes.size() - header_bytes);
  if (payload < elements) {
    BP_FAIL(path << ": truncated: header says " << elements << " bytes of data (dims "
                 << dims_string(array.dims) << "), file holds " << payload);
  }
  if (payload > elements) {
    BP_FAIL(path << ": trailing garbage: header says " << elements << " bytes of data (dims "
                 << dims_string(array.dims) << "), file holds " << payload);
  }
  // Drop the header in place rather than copying tens of megabytes of pixels.
  bytes.erase(bytes.begin(), bytes.begin() + std::ptrdiff_t(header_bytes));
  array.data = std::move(bytes);
  return array;
}

IdxArray read_idx(const std::string& path) {
  return parse_idx(has_gzip_magic(path) ? read_gzip(path) : read_plain(path), path);
}

}  // namespace bp
