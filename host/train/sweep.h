// Sweeps: a data set x model x rule x seed grid of training runs, each in its own run
// directory under the sweep directory, resumable run by run.
#pragma once
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

// The stop_reason in run_dir/summary.json, or "" when there is none (or it cannot be read).
std::string stored_stop_reason(const std::string& run_dir);

}  // namespace bp
