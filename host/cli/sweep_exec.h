// Executing a sweep's runs: one after another in this process, or several at once, each its own
// child process (`brainprop sweep ... --run-one NAME`), placed on GPUs round-robin. Both record
// every run's outcome in the sweep's record (sweep.json, or sweep.shard-K-of-N.json for a
// shard) and end with the list of failed runs.
#pragma once
#include <string>
#include <vector>

#include "train/sweep.h"

namespace bp::cli {

struct SweepInvocation {
  std::string sweep_dir;
  std::string record_path;             // where the outcomes go; "" for a --run-one child
  std::vector<SweepRun> runs;          // the runs this invocation covers, in grid order
  std::vector<RunState> states;        // per run, when the invocation started
  Placement placement;
  std::vector<std::string> child_args; // `sweep` arguments for a child, before --run-one NAME
  bool progress = true;                // the sweep-level bar on a terminal
};

// Exit status: 0 every run finished, 1 some failed (listed), 3 a --run-one child's run
// diverged, 130 interrupted.
int execute_in_process(const SweepInvocation& sweep);
int execute_in_children(const SweepInvocation& sweep);

}  // namespace bp::cli
