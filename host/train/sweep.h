// Sweeps: a data set x model x rule x seed grid of training runs, each in its own run
// directory under the sweep directory, resumable run by run.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "train/train_config.h"

namespace bp {

struct SweepRun {
  std::string name;  // <data>-<model>-<rule>-s<seed>, also the run directory's name
  TrainConfig config;
};

// The grid in a fixed order (data, model, rule, seed); `base` gives every other option.
// data_names[i] is a file-name-safe short name for data_specs[i].
std::vector<SweepRun> sweep_grid(const TrainConfig& base, const std::vector<std::string>& data_specs,
                                 const std::vector<std::string>& data_names,
                                 const std::vector<std::string>& models,
                                 const std::vector<Rule>& rules, const std::vector<uint64_t>& seeds,
                                 const std::string& sweep_dir);

enum class RunStatus { Fresh, Resume, Done };
const char* run_status_name(RunStatus status);

// What to do with a run directory: start afresh (nothing usable there), resume it (a
// checkpoint and no finished summary, or a finished run whose epoch limit was raised), or
// skip it (finished; also a run that diverged, stop_reason nan_loss or nonfinite_weights,
// with or without a checkpoint: rerunning it would diverge again). A directory made with a different configuration is an error naming
// the differing field: a sweep never mixes runs of different settings.
RunStatus run_status(const TrainConfig& wanted);

// --shard K/N: the deterministic K-th (1-based) of N parts of a grid, so a batch scheduler's
// job array runs one sweep over many machines: run i of the grid is in part (i mod N) + 1,
// which spreads every model, rule and seed over the parts.
struct Shard {
  int index = 1, count = 1;
  std::string text() const { return std::to_string(index) + "/" + std::to_string(count); }
};
Shard parse_shard(const std::string& text);  // "K/N", 1 <= K <= N; throws bp::Error otherwise
bool in_shard(size_t grid_index, const Shard& shard);

// Where a sweep's runs go when several run at once: `jobs` concurrent runs, spread round-robin
// over `gpus` (empty: the CPU, or the backend's default device). Run k of those to do (in grid
// order) is placed on gpus[k mod G]; GPU g runs at most slots[g] at once, the `jobs` slots
// shared out as evenly as they go (so slots sum to `jobs`, several per GPU when jobs > G).
struct Placement {
  int jobs = 1;
  std::vector<int> gpus;
  std::vector<int> slots;  // per entry of gpus
  int gpu_of(size_t k) const { return gpus.empty() ? -1 : gpus[k % gpus.size()]; }
  int slot_count_of(size_t k) const { return gpus.empty() ? jobs : slots[k % gpus.size()]; }
};
Placement make_placement(int jobs, const std::vector<int>& gpus);  // throws for jobs < 1, bad ids

// A run's state for `sweep --plan` and `sweep status`: done, failed (diverged), partial (a
// checkpoint: epochs_done of max_epochs), running (another process holds its lock), not started.
struct RunState {
  RunStatus status = RunStatus::Fresh;
  std::string state;       // "done", "failed (nan_loss)", "partial", "running", "not started"
  int epochs_done = 0;     // lines of history.jsonl
  long running_pid = 0;    // the lock holder, when running
  std::string detail;      // "epoch 3/10", "pid 1234", the stop reason
};
RunState describe_run(const TrainConfig& wanted);

// The sweep-level ETA from the epoch times seen so far: the epochs still allowed (each
// unfinished run's max_epochs minus its epochs done; early stopping may end them sooner, so it
// is an upper bound), times the mean seconds of an epoch, over the runs that go at once.
struct SweepProgress {
  int runs_total = 0, runs_done = 0, runs_running = 0;
  int64_t epochs_remaining = 0;
  int64_t epochs_timed = 0;    // history lines seen, whose seconds sum to epoch_seconds
  double epoch_seconds = 0;
  int concurrency = 1;
};
// nullopt until an epoch has been timed.
std::optional<double> sweep_eta_seconds(const SweepProgress& p);
// "sweep [#######.......] 3/8 runs done, 2 running, ETA <= 4m10s" (width characters of bar).
std::string sweep_progress_line(const SweepProgress& p, int width = 20);
std::string format_duration(double seconds);  // "45s", "4m10s", "2h03m"

// The stop_reason in run_dir/summary.json, or "" when there is none (or it cannot be read).
std::string stored_stop_reason(const std::string& run_dir);

}  // namespace bp
