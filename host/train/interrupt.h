// Ctrl-C handling: the first SIGINT/SIGTERM asks the trainer to stop at the next batch
// boundary (it then checkpoints and exits cleanly); a second one kills as usual.
#pragma once

namespace bp {

void install_interrupt_handler();
bool interrupt_requested();
void clear_interrupt();  // for tests

}  // namespace bp
