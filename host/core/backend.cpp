#include <chrono>

#include "core/backend.h"

namespace bp {

int64_t Backend::timing_mark() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double Backend::timing_elapsed_ms(int64_t from, int64_t to) { return double(to - from) * 1e-6; }

}  // namespace bp
