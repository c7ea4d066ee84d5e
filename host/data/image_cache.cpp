#include "data/image_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include "core/error.h"
#include "data/fnv_hash.h"
#include "io/atomic_file.h"

namespace bp {
namespace {

namespace fs = std::filesystem;

// File layout (host byte order; the byte-order mark rejects a file from another machine):
//   header (kHeaderBytes): magic[8], byte_order u32, version u32, fingerprint u64,
//                          height, width, channels, classes (u32 each),
//                          train_count, test_count, names_bytes (u64 each)
//   names: per class u32 length + bytes          (names_bytes in all)
//   labels: int32 train_count, then test_count
//   pixels: uint8 NHWC, train then test
//   crc32 (u32) of everything before it
constexpr char kMagic[8] = {'B', 'P', 'I', 'M', 'G', 'C', 'A', 'C'};
constexpr uint32_t kByteOrder = 0x01020304;
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 8 + 4 + 4 + 8 + 4 * 4 + 3 * 8;
// Plausibility bounds, so that a damaged header cannot make the size arithmetic overflow.
constexpr uint32_t kMaxSide = 1 << 15;
constexpr uint32_t kMaxClasses = 1 << 20;
constexpr uint64_t kMaxNamesBytes = uint64_t(1) << 28;
constexpr uint64_t kMaxPixelBytes = uint64_t(1) << 42;

struct Header {
  char magic[8];
  uint32_t byte_order, version;
  uint64_t fingerprint;
  uint32_t height, width, channels, classes;
  uint64_t train_count, test_count, names_bytes;
};

void put(std::string& out, const void* data, size_t n) { out.append(static_cast<const char*>(data), n); }
template <class T>
void put_value(std::string& out, T v) {
  put(out, &v, sizeof v);
}

void put_header(std::string& out, const Header& h) {
  put(out, h.magic, 8);
  for (uint32_t v : {h.byte_order, h.version}) put_value(out, v);
  put_value(out, h.fingerprint);
  for (uint32_t v : {h.height, h.width, h.channels, h.classes}) put_value(out, v);
  for (uint64_t v : {h.train_count, h.test_count, h.names_bytes}) put_value(out, v);
}

Header parse_header(const unsigned char* p) {
  Header h{};
  size_t at = 0;
  auto take = [&](void* dst, size_t n) {
    std::memcpy(dst, p + at, n);
    at += n;
  };
  take(h.magic, 8);
  for (uint32_t* v : {&h.byte_order, &h.version}) take(v, 4);
  take(&h.fingerprint, 8);
  for (uint32_t* v : {&h.height, &h.width, &h.channels, &h.classes}) take(v, 4);
  for (uint64_t* v : {&h.train_count, &h.test_count, &h.names_bytes}) take(v, 8);
  return h;
}

// CRC-32 of a large buffer, chunks in parallel and joined with crc32_combine: a cache of
// Tiny ImageNet is 1.3 GB and a serial CRC would cost a second of every start.
uint32_t crc32_update(uint32_t crc, const uint8_t* data, size_t n) {
  constexpr size_t kChunk = size_t(1) << 24;
  const int64_t chunks = int64_t((n + kChunk - 1) / kChunk);
  std::vector<uLong> parts(static_cast<size_t>(chunks));
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    const size_t begin = size_t(c) * kChunk;
    parts[size_t(c)] = ::crc32(0L, data + begin, uInt(std::min(kChunk, n - begin)));
  }
  uLong out = crc;
  for (int64_t c = 0; c < chunks; ++c) {
    const size_t len = std::min(kChunk, n - size_t(c) * kChunk);
    out = crc32_combine(out, parts[size_t(c)], z_off_t(len));
  }
  return uint32_t(out);
}

// A file descriptor that closes itself.
class InFile {
 public:
  explicit InFile(const std::string& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {}
  ~InFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  InFile(const InFile&) = delete;
  InFile& operator=(const InFile&) = delete;
  int fd() const { return fd_; }

  // Reads exactly n bytes; false at end of file or on an error.
  bool read_exact(void* dst, size_t n) {
    auto* p = static_cast<char*>(dst);
    while (n > 0) {
      const ssize_t got = ::read(fd_, p, std::min(n, size_t(1) << 30));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return false;
      p += got;
      n -= size_t(got);
    }
    return true;
  }

 private:
  int fd_;
};

// Parses the names block: exactly `classes` length-prefixed names filling all of it.
bool parse_names(const std::string& block, uint32_t classes, std::vector<std::string>& names) {
  size_t at = 0;
  for (uint32_t c = 0; c < classes; ++c) {
    uint32_t len = 0;
    if (block.size() - at < 4) return false;
    std::memcpy(&len, block.data() + at, 4);
    at += 4;
    if (block.size() - at < len) return false;
    names.push_back(block.substr(at, len));
    at += len;
  }
  return at == block.size();
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

std::string image_cache_directory() {
  auto env = [](const char* name) -> std::string {
    const char* value = std::getenv(name);
    return value ? value : "";
  };
  if (std::string dir = env("BRAINPROP_CACHE_DIR"); !dir.empty()) return dir;
  if (std::string xdg = env("XDG_CACHE_HOME"); !xdg.empty()) return xdg + "/brainprop";
  if (std::string home = env("HOME"); !home.empty()) return home + "/.cache/brainprop";
  return "";
}

std::string image_cache_path(const std::string& kind, const std::string& source) {
  const std::string dir = image_cache_directory();
  if (dir.empty()) return "";
  std::error_code ec;
  fs::path absolute = fs::weakly_canonical(fs::absolute(source), ec);
  if (ec) absolute = fs::absolute(source).lexically_normal();
  Fnv1a64 hash;
  hash.add_string(kind);
  hash.add_string(absolute.string());
  return dir + "/" + kind + "-" + hex64(hash.value()) + ".bpcache";
}

void write_image_cache(const std::string& path, uint64_t fingerprint, const Dataset& data) {
  const ImageSet& train = data.train;
  const ImageSet& test = data.test;
  BP_CHECK(train.height == test.height && train.width == test.width && train.channels == test.channels,
           path << ": train and test images differ in shape");
  std::string names;
  for (const std::string& name : data.class_names) {
    put_value(names, uint32_t(name.size()));
    names += name;
  }
  Header h{};
  std::memcpy(h.magic, kMagic, 8);
  h.byte_order = kByteOrder;
  h.version = kVersion;
  h.fingerprint = fingerprint;
  h.height = uint32_t(train.height);
  h.width = uint32_t(train.width);
  h.channels = uint32_t(train.channels);
  h.classes = uint32_t(data.class_names.size());
  h.train_count = uint64_t(train.count);
  h.test_count = uint64_t(test.count);
  h.names_bytes = names.size();

  std::string out;
  out.reserve(kHeaderBytes + names.size() + 4 * (train.labels.size() + test.labels.size()) +
              train.pixels.size() + test.pixels.size() + 4);
  put_header(out, h);
  out += names;
  put(out, train.labels.data(), 4 * train.labels.size());
  put(out, test.labels.data(), 4 * test.labels.size());
  put(out, train.pixels.data(), train.pixels.size());
  put(out, test.pixels.data(), test.pixels.size());
  put_value(out, crc32_update(0, reinterpret_cast<const uint8_t*>(out.data()), out.size()));

  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  if (ec) {
    BP_FAIL("cannot create cache directory " << fs::path(path).parent_path().string() << ": "
                                             << ec.message());
  }
  write_file_atomic(path, out);
}

CacheStatus read_image_cache(const std::string& path, uint64_t fingerprint, Dataset& out, std::string& why) {
  InFile file(path);
  if (file.fd() < 0) {
    if (errno == ENOENT) return CacheStatus::kMissing;
    why = std::string("cannot open: ") + std::strerror(errno);
    return CacheStatus::kCorrupt;
  }
  struct stat st {};
  if (::fstat(file.fd(), &st) != 0) {
    why = std::string("cannot stat: ") + std::strerror(errno);
    return CacheStatus::kCorrupt;
  }
  const uint64_t file_bytes = uint64_t(st.st_size);
  unsigned char raw[kHeaderBytes];
  if (file_bytes < kHeaderBytes || !file.read_exact(raw, kHeaderBytes)) {
    why = "truncated header (" + std::to_string(file_bytes) + " bytes)";
    return CacheStatus::kCorrupt;
  }
  const Header h = parse_header(raw);
  if (std::memcmp(h.magic, kMagic, 8) != 0 || h.byte_order != kByteOrder || h.version != kVersion) {
    why = "not a brainprop image cache of this version";
    return CacheStatus::kCorrupt;
  }
  if (h.fingerprint != fingerprint) return CacheStatus::kStale;
  if (h.height < 1 || h.height > kMaxSide || h.width < 1 || h.width > kMaxSide || h.channels < 1 ||
      h.channels > 4 || h.classes < 1 || h.classes > kMaxClasses || h.names_bytes > kMaxNamesBytes) {
    why = "implausible header";
    return CacheStatus::kCorrupt;
  }
  const uint64_t image_bytes = uint64_t(h.height) * h.width * h.channels;
  const uint64_t max_images = kMaxPixelBytes / image_bytes;
  if (h.train_count > max_images || h.test_count > max_images - h.train_count) {
    why = "implausible image counts";
    return CacheStatus::kCorrupt;
  }
  const uint64_t images = h.train_count + h.test_count;
  const uint64_t expected = kHeaderBytes + h.names_bytes + images * (4 + image_bytes) + 4;
  if (file_bytes != expected) {
    why = "size " + std::to_string(file_bytes) + " bytes, its header implies " + std::to_string(expected) +
          " (truncated or damaged)";
    return CacheStatus::kCorrupt;
  }

  std::string names_block(h.names_bytes, '\0');
  ImageSet train, test;
  for (ImageSet* set : {&train, &test}) {
    set->count = int64_t(set == &train ? h.train_count : h.test_count);
    set->height = int(h.height);
    set->width = int(h.width);
    set->channels = int(h.channels);
    set->labels.resize(size_t(set->count));
    set->pixels.resize(size_t(uint64_t(set->count) * image_bytes));
  }
  uint32_t stored_crc = 0;
  const bool complete = file.read_exact(names_block.data(), names_block.size()) &&
                        file.read_exact(train.labels.data(), 4 * train.labels.size()) &&
                        file.read_exact(test.labels.data(), 4 * test.labels.size()) &&
                        file.read_exact(train.pixels.data(), train.pixels.size()) &&
                        file.read_exact(test.pixels.data(), test.pixels.size()) &&
                        file.read_exact(&stored_crc, 4);
  if (!complete) {
    why = "short read (file changed while being read?)";
    return CacheStatus::kCorrupt;
  }
  uint32_t crc = crc32_update(0, raw, kHeaderBytes);
  crc = crc32_update(crc, reinterpret_cast<const uint8_t*>(names_block.data()), names_block.size());
  crc = crc32_update(crc, reinterpret_cast<const uint8_t*>(train.labels.data()), 4 * train.labels.size());
  crc = crc32_update(crc, reinterpret_cast<const uint8_t*>(test.labels.data()), 4 * test.labels.size());
  crc = crc32_update(crc, train.pixels.data(), train.pixels.size());
  crc = crc32_update(crc, test.pixels.data(), test.pixels.size());
  if (crc != stored_crc) {
    why = "CRC-32 mismatch (damaged)";
    return CacheStatus::kCorrupt;
  }
  std::vector<std::string> names;
  if (!parse_names(names_block, h.classes, names)) {
    why = "malformed class names";
    return CacheStatus::kCorrupt;
  }
  for (const ImageSet* set : {&train, &test}) {
    for (int32_t label : set->labels) {
      if (label < 0 || uint32_t(label) >= h.classes) {
        why = "label " + std::to_string(label) + " outside [0, " + std::to_string(h.classes) + ")";
        return CacheStatus::kCorrupt;
      }
    }
  }
  out.class_names = std::move(names);
  out.classes = int(h.classes);
  out.train = std::move(train);
  out.test = std::move(test);
  return CacheStatus::kHit;
}

}  // namespace bp
