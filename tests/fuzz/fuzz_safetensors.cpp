// The safetensors reader (decode_safetensors, in memory). A file it accepts must survive a
// round trip: encoded again and decoded, it gives the same tensors and metadata.
#include <cstdint>
#include <string_view>

#include "fuzz_common.h"
#include "io/safetensors.h"

namespace {

bool same(const bp::SafetensorsFile& a, const bp::SafetensorsFile& b) {
  if (a.metadata != b.metadata || a.tensors.size() != b.tensors.size()) return false;
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const bp::NamedTensor &x = a.tensors[i], &y = b.tensors[i];
    if (x.name != y.name || x.dtype != y.dtype || x.shape != y.shape || x.bytes != y.bytes) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  bp_fuzz::expect_success_or_error([&] {
    const bp::SafetensorsFile file = bp::decode_safetensors(bytes, "fuzz.safetensors");
    // Writing may refuse what reading accepts (e.g. an empty tensor name): a bp::Error.
    const std::string again = bp::encode_safetensors(file.tensors, file.metadata);
    bp_fuzz::must_succeed("safetensors: reading back what was written", [&] {
      const bp::SafetensorsFile reread = bp::decode_safetensors(again, "fuzz round trip");
      bp_fuzz::require(reread.checksums_verified, "safetensors: round trip lost the checksums");
      bp_fuzz::require(same(file, reread), "safetensors: round trip changed the file");
    });
  });
  return 0;
}
