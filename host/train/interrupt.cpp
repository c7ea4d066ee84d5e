#include "train/interrupt.h"

#include <csignal>

namespace bp {
namespace {

volatile std::sig_atomic_t g_requested = 0;

void on_signal(int sig) {
  if (g_requested) {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  g_requested = 1;
}

}  // namespace

void install_interrupt_handler() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
}

bool interrupt_requested() { return g_requested != 0; }
void clear_interrupt() { g_requested = 0; }

}  // namespace bp
