// 64-bit FNV-1a: a small, stable (across runs and builds) hash for cache names and source
// fingerprints. Not cryptographic; it only has to notice that files changed.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace bp {

class Fnv1a64 {
 public:
  void add_bytes(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) hash_ = (hash_ ^ p[i]) * 0x100000001b3ull;
  }
  void add_u64(uint64_t v) {
    unsigned char bytes[8];
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<unsigned char>(v >> (8 * i));
    add_bytes(bytes, 8);
  }
  // Length first, so that ("ab", "c") and ("a", "bc") hash differently.
  void add_string(const std::string& s) {
    add_u64(s.size());
    add_bytes(s.data(), s.size());
  }
  uint64_t value() const { return hash_; }

 private:
  uint64_t hash_ = 0xcbf29ce484222325ull;
};

}  // namespace bp
