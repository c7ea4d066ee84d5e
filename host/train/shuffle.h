// Seeded orderings of a data set: the per-epoch shuffle and the train/validation split.
// Each index gets a 64-bit Philox key and indices are sorted by (key, index), a recipe a
// GPU sort_by_key reproduces exactly.
#pragma once
#include <cstdint>
#include <vector>

#include "math/philox.h"

namespace bp {

std::vector<int32_t> seeded_permutation(int64_t count, uint64_t seed, RngStream stream,
                                        uint32_t round);

inline std::vector<int32_t> epoch_permutation(int64_t count, uint64_t seed, int epoch) {
  return seeded_permutation(count, seed, RngStream::kShuffle, static_cast<uint32_t>(epoch));
}

}  // namespace bp
