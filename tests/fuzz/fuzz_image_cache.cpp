// The decoded-image cache reader (read_image_cache). The input is a cache file; so that
// mutations reach past the two gates every random file fails, the harness takes the expected
// fingerprint from the input's own header (bytes 16..23) and rewrites the trailing CRC-32 to
// match (the mismatch paths are covered by tests/test_loaders.cpp).
#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "data/image_cache.h"
#include "fuzz_common.h"

namespace {
constexpr size_t kHeaderBytes = 64;  // data/image_cache.cpp's layout
constexpr size_t kFingerprintAt = 16;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  bp_fuzz::quiet_environment();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  uint64_t fingerprint = 0;
  if (bytes.size() >= kFingerprintAt + 8) std::memcpy(&fingerprint, bytes.data() + kFingerprintAt, 8);
  if (bytes.size() >= kHeaderBytes + 4) {
    const uint32_t crc = uint32_t(
        ::crc32(0L, reinterpret_cast<const Bytef*>(bytes.data()), uInt(bytes.size() - 4)));
    std::memcpy(bytes.data() + bytes.size() - 4, &crc, 4);
  }
  const std::string path = bp_fuzz::scratch_dir() + "/cache.bpcache";
  bp_fuzz::write_file(path, bytes);
  bp_fuzz::expect_success_or_error([&] {
    bp::Dataset out;
    std::string why;
    const bp::CacheStatus status = bp::read_image_cache(path, fingerprint, out, why);
    if (status == bp::CacheStatus::kCorrupt) bp_fuzz::require(!why.empty(), "image cache: corrupt without a reason");
    if (status != bp::CacheStatus::kHit) return;
    bp_fuzz::require(int(out.class_names.size()) == out.classes, "image cache: class names != classes");
    for (const bp::ImageSet* s : {&out.train, &out.test}) {
      bp_fuzz::require(int64_t(s->pixels.size()) == s->count * s->image_elements() &&
                           int64_t(s->labels.size()) == s->count,
                       "image cache: sizes disagree");
      for (int32_t label : s->labels) bp_fuzz::require(label >= 0 && label < out.classes, "image cache: bad label");
    }
  });
  return 0;
}
