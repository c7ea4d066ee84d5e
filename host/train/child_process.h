// Child processes for concurrent sweep runs: each run its own process, so a crash takes no
// other run down. A child gets its own process group (a terminal's Ctrl-C reaches the sweep
// only, which forwards one SIGTERM: a second signal would kill a child before its checkpoint),
// and dies with SIGTERM if the sweep itself dies (PR_SET_PDEATHSIG), checkpointing as for Ctrl-C.
#pragma once
#include <sys/types.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace bp {

struct ChildSpec {
  std::string executable;                                  // a path
  std::vector<std::string> argv;                           // argv[0] included
  std::vector<std::pair<std::string, std::string>> env;    // set (or replaced) in the child
  std::string log_path;                                    // stdout and stderr, appended
};

struct ChildExit {
  int code = 0;    // the exit status, when signal == 0
  int signal = 0;  // the signal that killed it, or 0
  std::string describe() const;  // "exit status 3", "killed by signal 9 (Killed)"
};

// Starts the child; throws bp::Error naming the executable if it cannot (the log cannot be
// opened, fork fails). An exec failure shows as exit status 127 with the reason in the log.
pid_t spawn_child(const ChildSpec& spec);

// The child's exit if it has ended (reaping it), nullopt while it runs.
std::optional<ChildExit> poll_child(pid_t pid);

// Waits for the child to end.
ChildExit wait_child(pid_t pid);

// This program's own executable (/proc/self/exe), for re-invoking it.
std::string self_executable();

}  // namespace bp
