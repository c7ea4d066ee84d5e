// The model-file reader (parse_model_text: JSON text to a validated ModelSpec). A model it
// accepts must survive a round trip through model_to_json unchanged.
#include <cstdint>
#include <string_view>

#include "fuzz_common.h"
#include "model/model_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  bp_fuzz::expect_success_or_error([&] {
    const bp::ModelSpec spec = bp::parse_model_text(text, "fuzz.json");
    bp_fuzz::must_succeed("model JSON: reading back model_to_json's output", [&] {
      const nlohmann::json resolved = bp::model_to_json(spec);
      const bp::ModelSpec again = bp::parse_model_text(resolved.dump(), "fuzz round trip");
      bp_fuzz::require(bp::model_to_json(again) == resolved, "model JSON: round trip changed the model");
    });
  });
  return 0;
}
