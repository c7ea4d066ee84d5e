#include "train/progress.h"

#include <unistd.h>

#include <cstdio>

namespace bp {

bool stderr_is_terminal() { return isatty(fileno(stderr)) != 0; }

ProgressBar::ProgressBar(bool enabled, int epoch, int max_epochs, int64_t batches)
    : enabled_(enabled && stderr_is_terminal()),
      epoch_(epoch),
      max_epochs_(max_epochs),
      batches_(batches),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

void ProgressBar::update(int64_t batch_done, int64_t images) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (batch_done < batches_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  const double seconds = std::chrono::duration<double>(now - start_).count();
  const int width = 30;
  const int filled = static_cast<int>(width * batch_done / (batches_ > 0 ? batches_ : 1));
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(width, '.');
  const double eta = batch_done > 0 ? seconds * double(batches_ - batch_done) / double(batch_done) : 0.0;
  std::fprintf(stderr, "\repoch %d/%d [%s] %lld/%lld  %.0f img/s  eta %.0fs ", epoch_, max_epochs_,
               bar.c_str(), static_cast<long long>(batch_done), static_cast<long long>(batches_),
               seconds > 0 ? double(images) / seconds : 0.0, eta);
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (!enabled_) return;
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
}

}  // namespace bp
