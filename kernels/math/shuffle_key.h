// The sort key of item i in a seeded permutation: 64 Philox bits keyed by (seed, stream, i,
// round). Sorting the keys (the index breaking ties) gives the same order on CPU and GPU.
#pragma once
#include <cstdint>

#include "hd.h"
#include "philox.h"

namespace bp {

BP_HD uint64_t shuffle_key(uint64_t seed, RngStream stream, uint32_t index, uint32_t round) {
  const Philox4 r = philox_draw(seed, stream, index, round);
  return (static_cast<uint64_t>(r.v[0]) << 32) | r.v[1];
}

}  // namespace bp
