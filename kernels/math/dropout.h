// Dropout with Keras rate semantics: each unit is dropped with probability `rate`, the kept
// ones are scaled by 1 / (1 - rate). The mask is a pure function of (seed, step, layer,
// element) on the Philox dropout stream, so the backward pass recomputes it instead of storing
// it and the CPU and GPU drop the same units.
#pragma once
#include <cstdint>

#include "hd.h"
#include "philox.h"

namespace bp {

// The Philox draw of elements 4 * group .. 4 * group + 3 (one call gives four uniforms).
BP_HD Philox4 dropout_draw(uint64_t seed, uint64_t step, uint32_t layer, uint64_t group) {
  return philox4x32(static_cast<uint32_t>(group), static_cast<uint32_t>(step),
                    (static_cast<uint32_t>(step >> 32) << 16) ^ layer,
                    static_cast<uint32_t>(RngStream::kDropout), seed);
}

BP_HD float dropout_keep_scale(float rate, uint32_t bits) {
  return uniform_from_bits(bits) < rate ? 0.0f : 1.0f / (1.0f - rate);
}

// The multiplier of element `index`: 0 or 1 / (1 - rate).
BP_HD float dropout_multiplier(float rate, uint64_t seed, uint64_t step, uint32_t layer,
                               uint64_t index) {
  return dropout_keep_scale(rate, dropout_draw(seed, step, layer, index >> 2).v[index & 3]);
}

}  // namespace bp
