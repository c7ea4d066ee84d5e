// Philox4x32-10 counter-based RNG (Salmon et al., SC'11), shared by CPU and GPU.
// Every random number in brainprop is a pure function of (seed, stream, counter),
// so both backends draw identical exploration, init, shuffle and dropout numbers
// regardless of thread count or launch shape.
#pragma once
#include <cstdint>
#include <cmath>

#include "hd.h"

namespace bp {

// Independent streams: one per purpose, so adding draws to one never shifts another.
enum class RngStream : uint32_t {
  kAction = 1,   // Max-Boltzmann exploration: counter (sample, step)
  kInit = 2,     // weight init: counter (element, parameter index)
  kShuffle = 3,  // per-epoch permutation keys: counter (index, epoch)
  kSplit = 4,    // train/validation split: counter (index)
  kDropout = 5,  // dropout masks: counter (element, step, layer)
  kFeedbackInit = 6,  // fa/learned feedback weights B: counter (element, parameter index)
};

struct Philox4 {
  uint32_t v[4];
};

BP_HD uint32_t philox_mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
  const uint64_t product = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  *hi = static_cast<uint32_t>(product >> 32);
  return static_cast<uint32_t>(product);
}

// Philox4x32 with 10 rounds; constants from the Random123 reference.
BP_HD Philox4 philox4x32(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint64_t seed) {
  uint32_t k0 = static_cast<uint32_t>(seed);
  uint32_t k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, hi1;
    const uint32_t lo0 = philox_mulhilo(0xD2511F53u, c0, &hi0);
    const uint32_t lo1 = philox_mulhilo(0xCD9E8D57u, c2, &hi1);
    const uint32_t n0 = hi1 ^ c1 ^ k0;
    const uint32_t n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// Four words for (seed, stream, a, b, c): the stream is mixed into the last counter word.
BP_HD Philox4 philox_draw(uint64_t seed, RngStream stream, uint32_t a, uint32_t b, uint32_t c = 0) {
  return philox4x32(a, b, c, static_cast<uint32_t>(stream), seed);
}

// Uniform in [0, 1) with 24 bits, exactly representable in float.
BP_HD float uniform_from_bits(uint32_t bits) {
  return static_cast<float>(bits >> 8) * (1.0f / 16777216.0f);
}

// Standard normal from two words (Box-Muller); u1 is kept away from 0.
BP_HD double normal_from_bits(uint32_t bits1, uint32_t bits2) {
  const double u1 = (static_cast<double>(bits1) + 1.0) * (1.0 / 4294967296.0);
  const double u2 = static_cast<double>(bits2) * (1.0 / 4294967296.0);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

}  // namespace bp
