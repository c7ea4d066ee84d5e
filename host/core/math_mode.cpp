#include "core/backend.h"

namespace bp {

MathMode parse_math_mode(const std::string& text) {
  if (text == "fp32") return MathMode::FP32;
  if (text == "tf32") return MathMode::TF32;
  BP_FAIL("unknown math mode \"" << text << "\" (known: fp32, tf32)");
}

const char* math_mode_name(MathMode mode) { return mode == MathMode::TF32 ? "tf32" : "fp32"; }

}  // namespace bp
