#include "train/shuffle.h"

#include <algorithm>
#include <utility>

#include "core/error.h"
#include "math/shuffle_key.h"

namespace bp {

std::vector<int32_t> seeded_permutation(int64_t count, uint64_t seed, RngStream stream,
                                        uint32_t round) {
  BP_CHECK(count >= 0 && count < (int64_t(1) << 31), "cannot order " << count << " items");
  std::vector<std::pair<uint64_t, int32_t>> keyed(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i)
    keyed[size_t(i)] = {shuffle_key(seed, stream, static_cast<uint32_t>(i), round),
                        static_cast<int32_t>(i)};
  std::sort(keyed.begin(), keyed.end());
  std::vector<int32_t> order(static_cast<size_t>(count));
  for (size_t i = 0; i < order.size(); ++i) order[i] = keyed[i].second;
  return order;
}

}  // namespace bp
