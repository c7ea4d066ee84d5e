// Progress reporting: a live bar within the epoch when stderr is a terminal, and one line
// per epoch on stdout in any case.
#pragma once
#include <chrono>
#include <string>

namespace bp {

class ProgressBar {
 public:
  ProgressBar(bool enabled, int epoch, int max_epochs, int64_t batches);
  // Redraws at most ~10 times a second; images = images done so far this epoch.
  void update(int64_t batch_done, int64_t images);
  void finish();

 private:
  bool enabled_;
  int epoch_, max_epochs_;
  int64_t batches_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

bool stderr_is_terminal();

}  // namespace bp
