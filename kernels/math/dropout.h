// Dropout with Keras rate semantics: each unit is dropped with probability `rate`, the kept
// ones are scaled by 1 / (1 - rate). The mask is a pure function of (seed, step, layer,
// element) on the Philox dropout stream, so the backward pass recomputes it instead of storing
// it and the CPU and GPU drop the same units.
#pragma once
#include <cstdint>

#include "hd.h"
#include "philox.h"

namespace bp {

// The multiplier of element `index`: 0 or 1 / (1 - rate).
BP_HD float dropout_multiplier(float rate, uint64_t seed, uint64_t step, uint32_t layer,
                               uint64_t index) {
  // One Philox call gives four uniforms: elements 4i..4i+3 share a draw.
  const Philox4 r = philox4x32(static_cast<uint32_t>(index >> 2), static_cast<uint32_t>(step),
                               (static_cast<uint32_t>(step >> 32) << 16) ^ layer,
                               static_cast<uint32_t>(RngStream::kDropout), seed);
  const float u = uniform_from_bits(r.v[index & 3]);
  return u < rate ? 0.0f : 1.0f / (1.0f - rate);
}

}  // namespace bp
