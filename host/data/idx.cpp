#include "data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <memory>
#include <utility>

#include "core/error.h"

namespace bp {
namespace {

constexpr uint8_t kTypeUnsignedByte = 0x08;
constexpr int kMaxDims = 4;
// Far above any real data set; keeps the size arithmetic free of overflow.
constexpr int64_t kMaxElements = int64_t(1) << 40;

uint32_t big_endian_u32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

std::string dims_string(const std::vector<int64_t>& dims) {
  std::string out;
  for (size_t i = 0; i < dims.size(); ++i) out += (i ? "x" : "") + std::to_string(dims[i]);
  return out;
}

// Where IDX bytes come from: a buffer in memory, a plain file or a gzip stream. read() hands
// out up to n bytes and returns how many (fewer only at the end); a corrupt gzip stream throws.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual size_t read(uint8_t* dst, size_t n) = 0;
  // The words an error uses for the bytes after the header: "decompressed data" for gzip.
  virtual const char* data_noun() const { return "data"; }
};

class MemorySource : public ByteSource {
 public:
  explicit MemorySource(const std::vector<uint8_t>& bytes) : bytes_(bytes) {}
  size_t read(uint8_t* dst, size_t n) override {
    const size_t got = std::min(n, bytes_.size() - at_);
    if (got == 0) return 0;  // memcpy's pointers must be valid even for 0 bytes
    std::memcpy(dst, bytes_.data() + at_, got);
    at_ += got;
    return got;
  }

 private:
  const std::vector<uint8_t>& bytes_;
  size_t at_ = 0;
};

class PlainFileSource : public ByteSource {
 public:
  PlainFileSource(std::ifstream in, const std::string& path) : in_(std::move(in)), path_(path) {}
  size_t read(uint8_t* dst, size_t n) override {
    in_.read(reinterpret_cast<char*>(dst), std::streamsize(n));
    if (in_.bad()) BP_FAIL(path_ << ": read error");
    return size_t(in_.gcount());
  }

 private:
  std::ifstream in_;
  const std::string& path_;
};

class GzipSource : public ByteSource {
 public:
  explicit GzipSource(const std::string& path) : file_(gzopen(path.c_str(), "rb"), gzclose), path_(path) {
    if (!file_) BP_FAIL(path << ": cannot open gzip file");
  }
  size_t read(uint8_t* dst, size_t n) override {
    size_t total = 0;
    while (total < n) {
      const unsigned want = unsigned(std::min<size_t>(n - total, size_t(1) << 30));
      const int got = gzread(file_.get(), dst + total, want);
      if (got < 0) fail("corrupt gzip data");
      total += size_t(got);
      if (unsigned(got) < want) {
        // A stream cut short reads as a clean end of file, with the error left in gzerror.
        int code = Z_OK;
        gzerror(file_.get(), &code);
        if (code != Z_OK) fail("corrupt or truncated gzip data");
        break;
      }
    }
    return total;
  }
  const char* data_noun() const override { return "decompressed data"; }

 private:
  [[noreturn]] void fail(const char* what) {
    int code = 0;
    const char* message = gzerror(file_.get(), &code);
    BP_FAIL(path_ << ": " << what << ": " << (message && *message ? message : "unknown zlib error"));
  }
  std::unique_ptr<gzFile_s, int (*)(gzFile)> file_;
  const std::string& path_;
};

bool has_gzip_magic(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) BP_FAIL(path << ": cannot open file");
  unsigned char magic[2] = {0, 0};
  in.read(reinterpret_cast<char*>(magic), 2);
  return in.gcount() == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
}

// Reads the header, then the first `max_items` items (all when negative or past the count).
// Only those bytes are pulled from `source`: a gzip stream is decompressed no further, which
// also stops a gzip bomb at the size the header implies. Reading everything, whatever follows
// the data is an error.
IdxArray read_from(ByteSource& source, const std::string& path, int64_t max_items) {
  uint8_t header[4 + 4 * kMaxDims];
  const size_t magic_bytes = source.read(header, 4);
  if (magic_bytes < 4) {
    BP_FAIL(path << ": truncated header: " << magic_bytes << " bytes, an IDX header needs at least 4");
  }
  if (header[0] != 0 || header[1] != 0) {
    BP_FAIL(path << ": not an IDX file: bad magic (first two bytes must be 0, got " << int(header[0]) << " "
                 << int(header[1]) << ")");
  }
  const int type = header[2];
  if (type != kTypeUnsignedByte) {
    BP_FAIL(path << ": unsupported IDX type code 0x" << std::hex << type << std::dec
                 << " (only 0x08, unsigned byte, is supported)");
  }
  const int ndims = header[3];
  if (ndims < 1 || ndims > kMaxDims) {
    BP_FAIL(path << ": bad IDX dimension count " << ndims << " (expected 1 to " << kMaxDims << ")");
  }
  const size_t header_bytes = 4 + 4 * size_t(ndims);
  const size_t dim_bytes = source.read(header + 4, header_bytes - 4);
  if (dim_bytes < header_bytes - 4) {
    BP_FAIL(path << ": truncated header: " << ndims << " dimensions need " << header_bytes
                 << " header bytes, file holds " << 4 + dim_bytes);
  }

  IdxArray array;
  int64_t elements = 1;
  for (int i = 0; i < ndims; ++i) {
    const int64_t dim = big_endian_u32(&header[4 + 4 * size_t(i)]);
    array.dims.push_back(dim);
    if (dim != 0 && elements > kMaxElements / dim) {
      BP_FAIL(path << ": implausibly large IDX array, dims " << dims_string(array.dims) << "...");
    }
    elements *= dim;
  }
  array.file_items = array.dims[0];
  const bool everything = max_items < 0 || max_items >= array.file_items;
  const int64_t items = everything ? array.file_items : max_items;
  const int64_t item_elements = array.file_items ? elements / array.file_items : 0;
  const int64_t wanted = items * item_elements;

  // Grown as the data arrives (doubling from 1 MiB), not sized from the header up front: a
  // header may claim a terabyte that the file does not hold.
  size_t got = 0;
  while (got < size_t(wanted)) {
    const size_t step = std::min(size_t(wanted) - got, std::max<size_t>(got, size_t(1) << 20));
    array.data.resize(got + step);
    const size_t read = source.read(array.data.data() + got, step);
    got += read;
    if (read < step) break;
  }
  array.data.resize(got);
  if (int64_t(got) < wanted) {
    BP_FAIL(path << ": truncated: header says " << elements << " bytes of data (dims " << dims_string(array.dims)
                 << "), file holds " << got);
  }
  if (everything) {
    uint8_t extra = 0;
    if (source.read(&extra, 1) != 0) {
      BP_FAIL(path << ": trailing garbage: the " << source.data_noun() << " runs past the "
                   << header_bytes + size_t(elements) << " bytes (header and data) its IDX header implies");
    }
  }
  array.dims[0] = items;
  return array;
}

}  // namespace

IdxArray parse_idx(const std::vector<uint8_t>& bytes, const std::string& path) {
  MemorySource source(bytes);
  return read_from(source, path, -1);
}

IdxArray read_idx(const std::string& path, int64_t max_items) {
  if (has_gzip_magic(path)) {
    GzipSource source(path);
    return read_from(source, path, max_items);
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) BP_FAIL(path << ": cannot open file");
  PlainFileSource source(std::move(in), path);
  return read_from(source, path, max_items);
}

}  // namespace bp
